"""Registry of FHIR operations the hub implements, so the CapabilityStatement lists exactly what is routed."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OperationInfo:
    name: str  # without $
    definition: str  # canonical OperationDefinition url
    resource_types: tuple[str, ...]  # () = system level
    documentation: str = ""


OPERATIONS: list[OperationInfo] = [
    OperationInfo(
        "validate",
        "http://hl7.org/fhir/OperationDefinition/Resource-validate",
        ("*",),
        "Validate a resource with fhir.resources (R4B) and the hub's profile rules; nothing is stored.",
    ),
]


def register(op: OperationInfo) -> None:
    if op not in OPERATIONS:
        OPERATIONS.append(op)
