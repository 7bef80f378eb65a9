"""The FHIR core benchmark (issue 3) runs end to end at tiny sizes on both backends. Benchmarks are not timed
tests: this checks that one run produces every figure, with the hub answering every request with 2xx."""

from __future__ import annotations

import asyncio
import math
import os
import shutil

import pytest

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_bench_core_quick_run_produces_all_figures(backend: str, redis_url: str) -> None:
    if shutil.which("wrk") is None:
        (pytest.fail if os.environ.get("CI") else pytest.skip)("wrk (Debian package) is needed to drive the servers")
    from bench import core

    results = await asyncio.to_thread(core.run_backend, backend, 1, 1.0, 300)
    expected = {"post", "get", "tx", "search", "tail", "tail_p50", "tail_p99", "tail_503", "server_p99",
                "base_tail", "rss", "warm"}
    assert set(results) == expected
    positive = {k: v for k, v in results.items() if k != "tail_503"}
    assert all(math.isfinite(v) and v > 0 for v in positive.values()), results
    assert results["tail_503"] == 0
