"""ACP domain errors; each leaves the hub as an OperationOutcome with its status."""

from __future__ import annotations

from hub.errors import Conflict, Forbidden, Invalid, NotFound


class PatientNotKnown(NotFound):
    """No such patient — or one the caller's role may never see (answered alike, README §8.3 / STYLE §4)."""


class AcpAccessRefused(Forbidden):
    """A care professional without a basis, or a patient objection: 403 that says why and what to do."""


class AmbiguousIdentifier(Conflict):
    """The identifier (e.g. a BSN) names more than one Patient: never guess whose ACP to show."""


class BadIdentifier(Invalid):
    """`identifier` is missing or not system|value."""
