"""Terminology failures; each carries its HTTP status and FHIR issue-type code (-> OperationOutcome)."""

from __future__ import annotations


class TerminologyError(Exception):
    """A code system, value set or code the hub does not know: 404 `not-found`."""

    status = 404
    code = "not-found"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.diagnostics = message


class TerminologyRequestInvalid(TerminologyError):
    """The request cannot be answered as asked (missing parameter, unsupported filter): 400 `invalid`."""

    status = 400
    code = "invalid"
