"""Non-FHIR payloads of the ingest API: the per-sender configuration an admin PUTs, and the format list."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hub.security.context import ROLES

# Roles a configured sender may act in; admin and privacy-officer would bypass or exceed what a feed needs.
SENDER_ROLES = tuple(r for r in ROLES if r not in ("admin", "privacy-officer"))
BedStatus = Literal["C", "H", "I", "K", "O", "U"]  # HL7 v2 table 0116


class Hl7Source(BaseModel):
    """One sending system on an MLLP connection: MSH-3 and MSH-4 (namespace id), "*" matches any."""

    model_config = ConfigDict(extra="forbid")
    application: str = Field("*", min_length=1, max_length=100)
    facility: str = Field("*", min_length=1, max_length=100)


class AdapterSettings(BaseModel):
    """What `SourceMeta.config` may hold (adapters/README.md): unknown keys are refused, so typos surface."""

    model_config = ConfigDict(extra="forbid")
    ward_products: dict[str, str] = Field(default_factory=dict)  # "ward", "ward/bed", ... -> care-product code
    vacated_bed_status: BedStatus | None = None  # status of a bed a patient leaves (default H)
    zorgdomein_products: dict[str, str] = Field(default_factory=dict)  # ZorgDomein product code -> care product

    def as_meta_config(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True, exclude_defaults=True)


class SenderSettings(BaseModel):
    """Body of `PUT /ingest/config/{sender}`."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    role: str
    kind: str | None = Field(None, max_length=40)  # SourceMeta.sender_kind; default: the role
    name: str | None = Field(None, max_length=200)
    hl7_sources: list[Hl7Source] = Field(default_factory=list, alias="hl7Sources")
    config: AdapterSettings = Field(default_factory=AdapterSettings)

    @field_validator("role")
    @classmethod
    def _known_role(cls, role: str) -> str:
        if role not in SENDER_ROLES:
            raise ValueError(f"role must be one of {', '.join(SENDER_ROLES)}")
        return role
