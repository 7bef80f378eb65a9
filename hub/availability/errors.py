"""Availability errors: each says what went wrong and leaves as an OperationOutcome with its status."""

from __future__ import annotations

from hub.errors import BusinessRule, Conflict, Forbidden, Invalid


class NotYourLocation(Forbidden):
    """A provider wrote a bed (or a count) of another organisation (403); nothing was written."""


class NotABed(BusinessRule):
    """$set-status on a Location that is not a bed (physicalType bd) (422)."""


class UnknownBedStatus(Invalid):
    """$set-status with a code that is not in HL7 v2 table 0116 (400)."""


class CountSubjectInvalid(BusinessRule):
    """A count MeasureReport whose subject is not a known HealthcareService of a care product, or whose reporter
    does not provide that service (422)."""


class SourceChanged(Conflict):
    """Another transaction changed the same bed or service first; nothing was written, retry (409)."""


class BadAvailabilityQuery(Invalid):
    """A parameter of $availability, /api/availability or the history report is not understood (400)."""
