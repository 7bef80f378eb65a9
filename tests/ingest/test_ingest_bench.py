"""The ingest benchmark runs end to end in quick mode: every figure is a positive finite number (not a timed test)."""

from __future__ import annotations

import math

from bench.ingest import main


def test_quick_ingest_benchmark_reports_positive_rates_and_ratios() -> None:
    figures = main(["--quick"])
    for key in ("mllp", "hl7_bare", "csv", "csv_bare", "hl7_ratio", "csv_ratio"):
        value = figures[key]
        assert isinstance(value, float) and math.isfinite(value) and value > 0, f"{key} = {value!r}"
    assert math.isclose(figures["hl7_ratio"], figures["mllp"] / figures["hl7_bare"])
    assert math.isclose(figures["csv_ratio"], figures["csv"] / figures["csv_bare"])
    assert all(len(rounds) == 3 for rounds in figures["rounds"].values())
