"""The repository interface every domain package uses: the only way resources reach the database."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from hub.security.context import AccessContext


@dataclass(frozen=True)
class StoredResource:
    """A stored version: its JSON bytes (meta included) plus what the HTTP layer needs for headers."""

    res_type: str
    res_id: str
    version: int
    last_updated: datetime
    content: bytes
    deleted: bool = False
    owner_org: str | None = None
    patient_id: str | None = None
    medical: bool = False
    rid: int | None = None

    @property
    def etag(self) -> str:
        return f'W/"{self.version}"'

    @property
    def location(self) -> str:
        return f"{self.res_type}/{self.res_id}/_history/{self.version}"


@dataclass(frozen=True)
class WriteResult:
    stored: StoredResource
    created: bool
    unchanged: bool = False  # conditional create that matched, or an identical update


class WriteHook(Protocol):
    """Called inside the writing transaction (availability aggregate, subscriptions, outbox)."""

    async def __call__(
        self, uow: Any, ctx: AccessContext, res_type: str, before: dict[str, Any] | None, after: dict[str, Any] | None
    ) -> None: ...


class ResourceRepository(Protocol):
    async def read_raw(self, ctx: AccessContext, res_type: str, res_id: str) -> StoredResource: ...
    async def read(self, ctx: AccessContext, res_type: str, res_id: str) -> dict[str, Any]: ...
    async def vread_raw(self, ctx: AccessContext, res_type: str, res_id: str, version: int) -> StoredResource: ...
    async def create(
        self, ctx: AccessContext, resource: dict[str, Any], *, res_id: str | None = None
    ) -> WriteResult: ...
    async def update(
        self, ctx: AccessContext, resource: dict[str, Any], *, if_match: int | None = None, method: str = "PUT"
    ) -> WriteResult: ...
    async def delete(self, ctx: AccessContext, res_type: str, res_id: str) -> StoredResource | None: ...
