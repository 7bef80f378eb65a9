"""AccessContext: who is asking, for which organisation, in which role, and why. Passed to every store call."""

from __future__ import annotations

from dataclasses import dataclass, field

ROLES = ("vvt-provider", "gp", "hap-doctor", "coordinator", "municipality", "admin", "privacy-officer")


@dataclass(frozen=True)
class AccessContext:
    """The caller of one request or task. `system` contexts are explicit and greppable: `AccessContext.system(...)`."""

    role: str
    org: str | None  # "system|value" (URA or AGB) of the caller's organisation
    subject: str = "anonymous"  # client id or user id from the token
    name: str | None = None
    purpose_of_use: str | None = None  # v3 ActReason, e.g. TREAT, ETREAT (break-the-glass)
    client_address: str | None = None
    request_id: str | None = None
    is_system: bool = False
    reason: str | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)
    acting_for: str | None = None  # the responsible user (NEN 7513 "verantwoordelijke gebruiker")

    @classmethod
    def system(cls, reason: str) -> AccessContext:
        """Hub-internal work (start-up, ingest plumbing, Celery tasks): full access, still audited by reason."""
        return cls(role="admin", org=None, subject="zorgnet-hub", is_system=True, reason=reason)

    @property
    def requester_key(self) -> str:
        return f"{self.role}|{self.org}|{self.subject}"
