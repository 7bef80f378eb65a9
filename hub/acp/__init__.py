"""Advance care planning (PZP/ACP) for the out-of-hours GP: issue 7.

service.py (install, $acp-summary), records.py (loading one patient's record), access.py (who may see it, on
which basis), summary.py + directives.py + statements.py (the HAP view), document.py (Bundle, Composition, HTML),
rules.py (PZP profile rules on write), audit_trail.py (the privacy officer's AuditEvent API), endpoints.py (routes),
tasks.py (sealing the audit hash chain).
"""
