"""The minimal FastAPI app every hub figure is compared against, started beside the hub in the same run."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

app = FastAPI()
_store: dict[str, dict[str, Any]] = {}


@app.post("/item")
async def post_item(body: dict[str, Any]) -> dict[str, str]:
    _store[str(len(_store))] = body
    return {"id": str(len(_store))}


@app.get("/item")
async def get_item() -> dict[str, Any]:
    return {"resourceType": "Location", "id": "x", "name": "Bed 1", "status": "active"}
