"""The answer a sending system gets: one OperationOutcome per delivery (HTTP body, CLI output, ACK text).

Issue 1 says what happened (stored / nothing changed / duplicate) and names the Provenance; then one
information issue per written resource version; then a warning per entry the hub did not apply (an older
event than the one standing, a spreadsheet count HL7 overrides) and one issue per adapter Problem. A record
the adapter rejected (an `error` Problem: one spreadsheet row, one product) is a *warning* here: the delivery
as a whole succeeded and its other records are stored.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from adapters.base import Problem
from hub.fhir.outcome import issue, outcome
from hub.ingest.ordering import Stale
from hub.ingest.precedence import Override
from hub.ingest.provenance import Written
from hub.store.sql import instant

_PROBLEM_CODES = {"error": "invalid", "warning": "processing", "information": "informational"}


def problem_issue(problem: Problem) -> dict[str, Any]:
    """An adapter Problem as an OperationOutcome issue (location in expression and diagnostics)."""
    severity = "information" if problem.severity == "information" else "warning"
    prefix = "record rejected: " if problem.severity == "error" else ""
    where = f" (at {problem.location})" if problem.location else ""
    expression = [problem.location] if problem.location else None
    return issue(severity, _PROBLEM_CODES[problem.severity], f"{prefix}{problem.message}{where}", expression)


def stale_issue(stale: Stale, event_time: datetime | None) -> dict[str, Any]:
    when = _utc(event_time) if event_time else "?"
    return issue(
        "warning",
        "conflict",
        f"{stale.label}: this event ({when}) is older than the one already applied ({_utc(stale.applied)}, "
        f"{stale.source}); not applied",
    )


def override_issue(override: Override) -> dict[str, Any]:
    return issue("warning", "conflict", override.detail)


def stored(
    headline: str,
    written: list[Written],
    provenance: str | None,
    stale: list[Stale],
    overrides: list[Override],
    problems: list[Problem],
    event_time: datetime | None,
) -> dict[str, Any]:
    created = sum(1 for w in written if w.created)
    if written:
        summary = (
            f"{headline} stored: {len(written)} resource version(s) written ({created} created, "
            f"{len(written) - created} updated); {provenance}"
        )
    else:
        summary = f"{headline} accepted: nothing changed"
    issues = [issue("information", "informational", summary)]
    issues += [
        issue("information", "informational", f"{'created' if w.created else 'updated'} {w.reference}") for w in written
    ]
    issues += [stale_issue(s, event_time) for s in stale]
    issues += [override_issue(o) for o in overrides]
    issues += [problem_issue(p) for p in problems]
    return outcome(*issues)


def duplicate(first: dict[str, Any], received: datetime, key: str, *, same_content: bool) -> dict[str, Any]:
    """A re-delivery: says so, then repeats the first answer's issues."""
    issues = [
        issue(
            "information",
            "duplicate",
            f"duplicate delivery of {key} (first received {_utc(received)}); nothing changed",
        )
    ]
    if not same_content:
        issues.append(
            issue(
                "warning",
                "duplicate",
                "this delivery reuses the message id of an earlier one with different content; "
                "its content was not applied (send a new message id for new content)",
            )
        )
    issues += list(first.get("issue") or [])
    return outcome(*issues)


def _utc(ts: datetime) -> str:
    aware = ts if ts.tzinfo else ts.replace(tzinfo=UTC)
    return instant(aware.astimezone(UTC).replace(tzinfo=None))
