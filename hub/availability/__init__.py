"""Live bed availability per care product × provider × region (issue 4).

Two ways in: per-bed status on bed Locations (HL7 v2 table 0116 + the hub's bed-reservation extension) and per-service
counts as SANER-style MeasureReports. One picture out: an aggregate kept incrementally by a write hook in the
writing transaction (`aggregate.py`), cached in Redis (production) or in-process (embedded), served as
`HealthcareService/$availability`, `/api/availability` (JSON), `/api/availability/stream` (SSE) and R4
Subscriptions, with periodic snapshots for occupancy over time. Wiring: `hooks.install` (hub/domains.py).
"""
