"""HubError and its status/issue-code table: every failure leaves the hub as one of these (-> OperationOutcome)."""

from __future__ import annotations


class HubError(Exception):
    """Base error: HTTP status + FHIR issue-type code + readable diagnostics + FHIRPath expressions."""

    status, code = 500, "exception"
    severity = "error"

    def __init__(
        self,
        diagnostics: str,
        *,
        expression: list[str] | None = None,
        headers: dict[str, str] | None = None,
        issues: list[dict[str, object]] | None = None,
    ) -> None:
        super().__init__(diagnostics)
        self.diagnostics = diagnostics
        self.expression = expression or []
        self.headers = headers or {}
        self.extra_issues = issues or []


class Invalid(HubError):
    status, code = 400, "invalid"


class Unprocessable(HubError):
    """Well-formed but not valid FHIR (structure, cardinality, value): 422 per the FHIR http spec."""

    status, code = 422, "processing"


class Unauthorized(HubError):
    status, code = 401, "login"


class Forbidden(HubError):
    status, code = 403, "forbidden"


class NotFound(HubError):
    status, code = 404, "not-found"


class MethodNotAllowed(HubError):
    status, code = 405, "not-supported"


class NotAcceptable(HubError):
    status, code = 406, "not-supported"


class Gone(HubError):
    status, code = 410, "deleted"


class Conflict(HubError):
    status, code = 409, "conflict"


class PreconditionFailed(HubError):
    status, code = 412, "conflict"


class TooLarge(HubError):
    status, code = 413, "too-costly"


class UnsupportedMediaType(HubError):
    status, code = 415, "not-supported"


class BusinessRule(HubError):
    status, code = 422, "business-rule"


class TooManyRequests(HubError):
    status, code = 429, "throttled"


class Unavailable(HubError):
    status, code = 503, "transient"


class NotSupported(HubError):
    status, code = 400, "not-supported"
