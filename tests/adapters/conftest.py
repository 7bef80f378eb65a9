"""Adapter tests need only the repository root on sys.path (no database, no app)."""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # pytest's rootdir is not importable by default (no pythonpath setting)
    sys.path.insert(0, str(REPO_ROOT))
