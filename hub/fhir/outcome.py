"""The only module that builds OperationOutcome bodies and error responses."""

from __future__ import annotations

from typing import Any

from hub.errors import HubError
from hub.fhir.responses import FhirResponse


def issue(severity: str, code: str, diagnostics: str, expression: list[str] | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"severity": severity, "code": code, "diagnostics": diagnostics}
    if expression:
        item["expression"] = expression
    return item


def outcome(*issues: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": list(issues)}


def error_outcome(err: HubError) -> dict[str, Any]:
    return outcome(issue(err.severity, err.code, err.diagnostics, err.expression), *err.extra_issues)


def outcome_response(err: HubError) -> FhirResponse:
    return FhirResponse(error_outcome(err), status_code=err.status, headers=err.headers)


def information(diagnostics: str) -> dict[str, Any]:
    return outcome(issue("information", "informational", diagnostics))
