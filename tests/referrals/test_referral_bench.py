"""`python -m bench.referrals --quick` runs end to end (real API, Celery worker, PostgreSQL, private redis-server) and
prints positive, finite figures. Only that: the figures themselves depend on the machine."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def test_referral_benchmark_quick_gives_positive_finite_figures(pg_schema, redis_url):
    if shutil.which("redis-server") is None:
        (pytest.fail if os.environ.get("CI") else pytest.skip)("redis-server is needed (Debian package redis-server)")
    out = subprocess.run([sys.executable, "-m", "bench.referrals", "--quick"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    line = next(li for li in reversed(out.stdout.splitlines()) if li.startswith("json: "))
    figures = json.loads(line.removeprefix("json: "))
    for name in ("first_offer_ms", "celery_start_ms", "ratio", "referrals_per_s", "sustained_s"):
        assert isinstance(figures[name], int | float) and math.isfinite(figures[name]) and figures[name] > 0, name
