"""ACP test fixtures: a hub with the PZP conformance examples loaded (helpers live in acp_examples.py)."""

from __future__ import annotations

from typing import Any

import pytest
from acp_examples import load_examples


@pytest.fixture
async def pzp(hub: Any) -> Any:
    """The hub (SQLite and PostgreSQL) with every PZP example stored and De Brink as the patients' GP."""
    await load_examples(hub)
    return hub
