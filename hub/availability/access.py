"""Who is reading availability: a bearer token in the Authorization header, or (for the coordination-point page
and its live stream, which a browser's EventSource cannot give headers) the same token in the `zorgnet_token`
cookie that /overzicht sets. Availability is not personal data: every authenticated role may read it; the
cookie is HttpOnly and SameSite=Strict and only read-only GET endpoints accept it."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from hub.security.context import AccessContext

TOKEN_COOKIE = "zorgnet_token"


def reader_context(request: Request) -> AccessContext:
    authorization = request.headers.get("authorization")
    if not authorization and (token := request.cookies.get(TOKEN_COOKIE)):
        authorization = f"Bearer {token}"
    ctx: AccessContext = request.app.state.tokens.context(
        authorization, purpose_of_use=request.headers.get("x-purpose-of-use"),
        client_address=request.client.host if request.client else None,
        request_id=getattr(request.state, "request_id", None))
    return ctx


Reader = Annotated[AccessContext, Depends(reader_context)]
