"""Fixtures for the terminology tests: the repository's own profiles/ loaded once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.terminology.loader import ProfileSet, load_profiles

REPO = Path(__file__).resolve().parents[2]
PROFILES_DIR = REPO / "profiles"


@pytest.fixture(scope="session")
def profiles() -> ProfileSet:
    return load_profiles(PROFILES_DIR)
