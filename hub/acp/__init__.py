"""Advance care planning (PZP/ACP) for the out-of-hours GP: issue 7.

service.py (install, $acp-summary), records.py (loading), access.py (who may see it), summary.py (the view),
document.py (Bundle, Composition, HTML), rules.py (PZP profile rules), audit_trail.py (AuditEvent API),
endpoints.py (routes), tasks.py (sealing the audit chain).
"""
