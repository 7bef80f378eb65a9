"""OAuth2 endpoints: SMART Backend Services token endpoint and its discovery document."""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from hub.security.tokens import exchange_client_assertion

router = APIRouter(tags=["auth"])


def _token_url(request: Request) -> str:
    base = request.app.state.runtime.settings.base_url.rstrip("/")
    return f"{base}/auth/token"


@router.post("/auth/token")
async def token(request: Request) -> JSONResponse:
    form = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
    runtime = request.app.state.runtime
    async with runtime.engine.connect() as conn:
        body = await exchange_client_assertion(
            conn, runtime.settings, request.app.state.replay_guard, form, _token_url(request)
        )
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


@router.get("/fhir/.well-known/smart-configuration")
@router.get("/.well-known/smart-configuration")
async def smart_configuration(request: Request) -> JSONResponse:
    return JSONResponse(
        {
            "token_endpoint": _token_url(request),
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
            "grant_types_supported": ["client_credentials"],
            "scopes_supported": ["system/*.read", "system/*.write", "system/*.*"],
            "capabilities": ["client-confidential-asymmetric"],
        }
    )
