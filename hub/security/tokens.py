"""Bearer tokens (JWT, pyjwt) and the SMART Backend Services token endpoint (client_credentials + private_key_jwt).

pyjwt was picked over authlib: we need JWS verification against a client's JWKS and HS256 issuing, which pyjwt
does in a few calls without pulling in an OAuth server framework.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from typing import Any

import jwt
import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.config import Settings
from hub.errors import Invalid, Unauthorized
from hub.security.context import ROLES, AccessContext
from hub.store.schema import clients

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_ALGS = ["RS384", "ES384", "RS256", "ES256"]


def issue_token(
    settings: Settings,
    *,
    role: str,
    org: str | None,
    subject: str,
    name: str | None = None,
    scope: str = "system/*.*",
    ttl: int | None = None,
) -> str:
    """A hub-signed access token carrying the caller's role and organisation (URA/AGB as system|value)."""
    if role not in ROLES:
        raise Invalid(f"unknown role '{role}'; one of {', '.join(ROLES)}")
    now = int(time.time())
    claims = {
        "iss": settings.token_issuer,
        "sub": subject,
        "role": role,
        "org": org,
        "scope": scope,
        "iat": now,
        "exp": now + (ttl or settings.token_ttl_seconds),
        "jti": str(uuid.uuid4()),
    }
    if name:
        claims["name"] = name
    return jwt.encode(claims, settings.signing_key.get_secret_value(), algorithm="HS256")


class TokenVerifier:
    """Verifies bearer tokens; decoded claims are cached briefly (the hot read path pays for HMAC once)."""

    def __init__(self, settings: Settings, cache_size: int = 4096) -> None:
        self.settings = settings
        self._cache: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._size = cache_size

    def verify(self, token: str) -> dict[str, Any]:
        claims = self._cache.get(token)
        if claims is not None and claims["exp"] > time.time():
            return claims
        try:
            claims = jwt.decode(
                token,
                self.settings.signing_key.get_secret_value(),
                algorithms=["HS256"],
                issuer=self.settings.token_issuer,
                options={"require": ["exp", "sub", "role"]},
            )
        except jwt.PyJWTError as exc:
            raise Unauthorized(
                f"invalid bearer token: {exc}", headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
            ) from None
        self._cache[token] = claims
        if len(self._cache) > self._size:
            self._cache.popitem(last=False)
        return claims

    def context(
        self,
        authorization: str | None,
        *,
        purpose_of_use: str | None = None,
        client_address: str | None = None,
        request_id: str | None = None,
    ) -> AccessContext:
        if not authorization or not authorization.lower().startswith("bearer "):
            raise Unauthorized(
                "authentication required: send 'Authorization: Bearer <token>'",
                headers={"WWW-Authenticate": 'Bearer realm="zorgnet-hub"'},
            )
        claims = self.verify(authorization[7:].strip())
        return AccessContext(
            role=claims["role"],
            org=claims.get("org"),
            subject=claims["sub"],
            name=claims.get("name"),
            purpose_of_use=purpose_of_use,
            client_address=client_address,
            request_id=request_id,
            scopes=frozenset(str(claims.get("scope", "")).split()),
        )


class ReplayGuard:
    """Refuses a client assertion `jti` seen before within its lifetime (RFC 7523 §3)."""

    def __init__(self) -> None:
        self._seen: dict[str, float] = {}

    def check(self, jti: str, exp: float) -> None:
        now = time.time()
        self._seen = {k: v for k, v in self._seen.items() if v > now}
        if jti in self._seen:
            raise Unauthorized("client assertion replayed (jti already used)")
        self._seen[jti] = exp


async def exchange_client_assertion(
    conn: AsyncConnection, settings: Settings, guard: ReplayGuard, form: dict[str, str], token_url: str
) -> dict[str, Any]:
    """SMART Backend Services: verify the client's signed JWT against its registered JWKS, issue an access token."""
    if form.get("grant_type") != "client_credentials":
        raise Invalid("grant_type must be client_credentials")
    if form.get("client_assertion_type") != CLIENT_ASSERTION_TYPE:
        raise Invalid(f"client_assertion_type must be {CLIENT_ASSERTION_TYPE}")
    assertion = form.get("client_assertion", "")
    try:
        unverified = jwt.decode(assertion, options={"verify_signature": False})
        header = jwt.get_unverified_header(assertion)
    except jwt.PyJWTError as exc:
        raise Unauthorized(f"client_assertion is not a JWT: {exc}") from None
    client_id = unverified.get("iss")
    if not client_id or unverified.get("sub") != client_id:
        raise Unauthorized("client_assertion iss and sub must both be the client_id")
    row = (await conn.execute(select(clients).where(clients.c.client_id == client_id))).first()
    if row is None or not row.active:
        raise Unauthorized(f"unknown client '{client_id}'")
    keys = orjson.loads(row.jwks).get("keys", [])
    candidates = [k for k in keys if not header.get("kid") or k.get("kid") == header.get("kid")]
    last_error: Exception | None = None
    for key in candidates:
        try:
            claims = jwt.decode(
                assertion,
                jwt.PyJWK(key).key,
                algorithms=ASSERTION_ALGS,
                audience=token_url,
                options={"require": ["exp", "jti", "iss", "sub", "aud"]},
            )
            break
        except jwt.PyJWTError as exc:
            last_error = exc
    else:
        raise Unauthorized(f"client_assertion signature or claims not valid: {last_error}")
    if claims["exp"] > time.time() + 300:
        raise Unauthorized("client_assertion exp must be at most 5 minutes ahead")
    guard.check(claims["jti"], claims["exp"])
    scope = form.get("scope") or "system/*.read"
    token = issue_token(settings, role=row.role, org=row.org, subject=client_id, name=row.name, scope=scope)
    return {"access_token": token, "token_type": "bearer", "expires_in": settings.token_ttl_seconds, "scope": scope}
