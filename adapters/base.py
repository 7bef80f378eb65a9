"""The contract every adapter honours: `source bytes + SourceMeta -> Translation`, pure and deterministic.

An adapter never reads the clock, the environment, a file or the database: "now", the sender and per-sender
configuration arrive in `SourceMeta`, so the same input always yields the same transaction Bundle (golden
tests, idempotent re-delivery). `hub/ingest` turns `AdapterError` into a 400/422 OperationOutcome and
`Problem`s into OperationOutcome issues next to the stored result.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Severity = Literal["error", "warning", "information"]


@dataclass(frozen=True)
class SourceMeta:
    """What the hub knows about a delivery besides its bytes (the adapter may not look anything up itself)."""

    received_at: datetime  # "now" comes in as an argument; adapters never read the clock
    sender: str | None = (
        None  # sending organisation as "system|value", e.g. "http://fhir.nl/fhir/NamingSystem/agb-z|12345678"
    )
    sender_kind: str | None = None  # "municipality", "vvt-provider", "gp", ... (respijt/logeeropvang payer rule)
    config: Mapping[str, Any] = field(default_factory=dict)  # per-sender settings, e.g. {"ward_products": {...}}


@dataclass(frozen=True)
class Problem:
    """One finding about the input that did not stop the translation (or stopped one record of many)."""

    severity: Severity
    message: str
    location: str | None = None  # "line 7, column Vrij" / "PID-3" / "DET+..."


@dataclass
class Translation:
    """The result of one delivery: a FHIR R4 transaction Bundle plus what the hub needs to store it safely."""

    bundle: dict[str, Any]  # FHIR R4 transaction Bundle (plain JSON) for the hub's normal write path
    problems: list[Problem]
    message_id: str | None  # HL7 MSH-10 / iWmo Identificatie / Edifact UNH ref; None -> hub uses a content hash
    event_time: datetime | None  # HL7 EVN-6/EVN-2 etc., for out-of-order handling
    kind: str  # short description, e.g. "ADT^A01", "WMO315", "bed-overview"

    @property
    def has_errors(self) -> bool:
        """True when at least one record was rejected; the rest of the Bundle is still usable."""
        return any(p.severity == "error" for p in self.problems)


class AdapterError(Exception):
    """The whole input is unusable; the hub answers 400/422 with an OperationOutcome."""

    def __init__(self, message: str, *, location: str | None = None, code: str = "invalid") -> None:
        super().__init__(message)
        self.message = message
        self.location = location
        self.code = code  # FHIR issue-type code: "invalid", "structure", "not-supported", "too-costly", ...

    def __str__(self) -> str:
        return f"{self.message} (at {self.location})" if self.location else self.message


Translate = Callable[[bytes, SourceMeta], Translation]
