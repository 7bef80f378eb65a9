"""Referral routing (issue 6): from a GP's ServiceRequest to an accepted bed, no double booking, nothing lost.

Read in this order: intake.py (what a referral is, its profile rule), routing.py (start + route + cascade),
matching.py / ranking.py / policy.py (who is asked first, and why), reservations.py (holding a bed or a count
with database-level guarantees), offers.py (the state machine: accept, decline, expire, cancel), ledger.py (the
referral row every transition claims by compare-and-set), notify.py (signed rest-hook notifications with
retries and a dead-letter state), tasks.py / endpoints.py / hooks.py (thin shells and wiring).
"""
