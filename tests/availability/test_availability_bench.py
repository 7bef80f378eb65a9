"""The availability benchmark runs end to end (tiny sizes). Benchmarks are not timed tests: this only checks
that one run produces every figure."""

from __future__ import annotations

import asyncio
import math
import os
import shutil

import pytest

pytestmark = pytest.mark.slow


async def test_bench_availability_quick_run_produces_all_figures(redis_url, pg_schema):
    if shutil.which("wrk") is None:
        (pytest.fail if os.environ.get("CI") else pytest.skip)("wrk (Debian package) is needed to drive the servers")
    from bench import availability

    results = await asyncio.to_thread(availability.main, ["--quick"])
    expected = {"query", "hgetall", "query_vs_hgetall", "large", "large_vs_small", "hub_rps", "minimal_rps",
                "minimal_db_rps", "update_ratio", "update_vs_db", "http", "small_product", "large_product",
                "core_put_rps", "update_vs_core"}
    assert set(results) == expected
    assert all(math.isfinite(value) and value > 0 for value in results.values()), results
