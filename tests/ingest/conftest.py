"""Ingest fixtures: a configured HL7 sender."""

from __future__ import annotations

from typing import Any

import pytest
from ingest_cases import HUNZEHOF, HUNZEHOF_CONFIG, configure


@pytest.fixture
async def hunzehof(hub: Any) -> Any:
    """De Hunzehof configured as an HL7 sender (ward ELV-ZW holds elv-hoog beds)."""
    response = await configure(hub, HUNZEHOF, HUNZEHOF_CONFIG)
    assert response.status_code == 200, response.text
    return hub
