"""Validation on every write: fhir.resources.R4B structure + the hub's own profile rules.

Errors point at the element (`expression`) so a client sees which field to fix. Domain packages add rules
through `ProfileRules.register` (e.g. PZP treatment-directive rules, bed Location rules).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from hub.errors import Invalid, Unprocessable

Rule = Callable[[dict[str, Any]], list[tuple[str, str]]]  # -> [(expression, message)]

_ID_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-.")


def model_class(resource_type: str) -> Any:
    try:
        return get_fhir_model_class(resource_type)
    except (KeyError, ValueError) as exc:
        raise NotFoundType(resource_type) from exc


class NotFoundType(Invalid):
    def __init__(self, resource_type: str) -> None:
        super().__init__(f"Unknown resource type '{resource_type}'", expression=["resourceType"])
        self.status = 404
        self.code = "not-supported"


def is_resource_type(name: str) -> bool:
    try:
        get_fhir_model_class(name)
    except (KeyError, ValueError):
        return False
    return name[:1].isupper()


def valid_id(value: str) -> bool:
    return 0 < len(value) <= 64 and set(value) <= _ID_CHARS


class ProfileRules:
    """Hub-specific invariants per resource type, checked after structural validation."""

    def __init__(self) -> None:
        self._rules: dict[str, list[Rule]] = defaultdict(list)

    def register(self, resource_type: str, rule: Rule) -> None:
        self._rules[resource_type].append(rule)

    def check(self, resource: dict[str, Any]) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        for rule in self._rules.get(resource.get("resourceType", ""), []):
            problems.extend(rule(resource))
        return problems


def validate(resource: Any, rules: ProfileRules | None = None, *, expected_type: str | None = None) -> dict[str, Any]:
    """Validate a parsed JSON resource; raise Unprocessable (422) with one issue per problem."""
    if not isinstance(resource, dict):
        raise Invalid("Body must be a JSON object (a FHIR resource)")
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str):
        raise Invalid("Missing resourceType", expression=["resourceType"])
    if expected_type and resource_type != expected_type:
        raise Invalid(
            f"resourceType '{resource_type}' does not match the endpoint type '{expected_type}'",
            expression=["resourceType"],
        )
    cls = model_class(resource_type)
    try:
        cls.model_validate(resource)
    except ValidationError as exc:
        raise _outcome_from_pydantic(resource_type, exc) from None
    except (ValueError, TypeError) as exc:
        raise Unprocessable(f"{resource_type} is not valid: {exc}", expression=[resource_type]) from None
    if "id" in resource and not (isinstance(resource["id"], str) and valid_id(resource["id"])):
        raise Unprocessable("id must be 1-64 characters [A-Za-z0-9-.]", expression=[f"{resource_type}.id"])
    if rules:
        check_rules(resource, rules)
    return resource


def check_rules(resource: dict[str, Any], rules: ProfileRules) -> None:
    """Only the hub's profile rules: for a change the server built itself from a stored (validated) resource and
    values from a closed vocabulary, where structural validation could not fail but costs ~0.5 ms."""
    problems = rules.check(resource)
    if problems:
        first_expr, first_msg = problems[0]
        raise Unprocessable(
            first_msg,
            expression=[first_expr],
            issues=[_issue(expr, msg) for expr, msg in problems[1:]],
        )


def _issue(expression: str, message: str) -> dict[str, Any]:
    return {"severity": "error", "code": "processing", "diagnostics": message, "expression": [expression]}


def _outcome_from_pydantic(resource_type: str, exc: ValidationError) -> Unprocessable:
    issues = []
    for err in exc.errors()[:50]:
        path = resource_type + "".join(
            f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"] if p != "__root__"
        )
        issues.append((path, f"{path}: {err['msg']}"))
    first_path, first_msg = issues[0]
    return Unprocessable(first_msg, expression=[first_path], issues=[_issue(p, m) for p, m in issues[1:]])
