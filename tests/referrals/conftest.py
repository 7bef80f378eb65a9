"""Referral fixtures (the factories live in referral_factories.py, importable by the test modules)."""

from __future__ import annotations

from typing import Any

import pytest
from referral_factories import Region, load_region


@pytest.fixture
async def region(hub: Any) -> Region:
    return await load_region(hub)
