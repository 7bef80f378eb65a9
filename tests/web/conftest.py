"""The web tests reuse the availability factories (tests/availability/availability_factories.py)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "availability"))
