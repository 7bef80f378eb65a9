"""Zorgnet Hub: a FHIR R4 hub for regional elderly-care coordination (bed availability, referrals, ACP)."""

__version__ = "0.1.0"
