"""Ingest errors: each leaves as an OperationOutcome (HTTP) or an AE/AR acknowledgement (MLLP)."""

from __future__ import annotations

from adapters.base import AdapterError
from hub.errors import Forbidden, HubError, Invalid, NotFound, Unprocessable, UnsupportedMediaType

# Adapter issue codes that mean "could not even be read" (400); everything else is readable but wrong (422).
UNREADABLE = frozenset({"structure", "security", "too-costly"})


class UnknownFormat(NotFound):
    """POST /ingest/{format} for a format the registry does not know."""


class WrongMediaType(UnsupportedMediaType):
    """The Content-Type is not one of the adapter's media types."""


class EmptyDelivery(Invalid):
    """A delivery without bytes."""


class UnknownSender(Forbidden):
    """MLLP / CLI: the sending system is not configured (only known senders are accepted)."""


class SenderConfigInvalid(Unprocessable):
    """PUT /ingest/config/{sender} with a configuration the adapters could not use."""


class InputRejected(HubError):
    """The adapter refused the whole input (AdapterError); nothing is stored. Status 400 or 422 by its code."""

    def __init__(self, fmt: str, err: AdapterError) -> None:
        where = f" (at {err.location})" if err.location else ""
        super().__init__(f"{fmt}: {err.message}{where}", expression=[err.location] if err.location else None)
        self.status = 400 if err.code in UNREADABLE else 422
        self.code = err.code
        self.adapter_code = err.code


class NothingUsable(Unprocessable):
    """Every record of a multi-record file was rejected: nothing to store, each rejected record is an issue."""


class StoreRefused(HubError):
    """The FHIR write path refused one resource of the translated Bundle; the whole delivery is rolled back."""

    def __init__(self, summary: str, err: HubError) -> None:
        super().__init__(f"{summary}: {err.diagnostics}", expression=err.expression, issues=err.extra_issues)
        self.status, self.code, self.cause = err.status, err.code, err
