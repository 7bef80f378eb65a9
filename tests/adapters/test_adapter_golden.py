"""Every shared domain sample (and our extra inputs) translates, and the output matches its golden file.

Regenerate after an intended change with `UPDATE_GOLDEN=1 .venv/bin/pytest tests/adapters`, then read the diff.
"""

from __future__ import annotations

import contextlib
import json
import os
import random

import orjson
import pytest
from adapter_cases import CASES, GOLDEN, SAMPLES, Case, golden_text, translate_case

from adapters import registry
from adapters.base import AdapterError


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_translation_matches_golden_file(case: Case) -> None:
    text = golden_text(translate_case(case))
    golden = GOLDEN / f"{case.name}.json"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.write_text(text, encoding="utf-8")
    assert golden.exists(), f"no golden file for {case.name}; run with UPDATE_GOLDEN=1 and review it"
    assert json.loads(text) == json.loads(golden.read_text(encoding="utf-8"))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_same_input_twice_gives_byte_identical_bundle(case: Case) -> None:
    first, second = translate_case(case), translate_case(case)
    assert orjson.dumps(first.bundle) == orjson.dumps(second.bundle)
    assert first.problems == second.problems


def test_every_shared_sample_is_covered() -> None:
    """A sample added to shared/domain/samples must get a golden case here (all of them must translate)."""
    samples = {p.resolve() for p in SAMPLES.rglob("*") if p.is_file() and p.name != "SOURCES.md"}
    covered = {c.path.resolve() for c in CASES}
    assert samples and samples <= covered, sorted(str(p) for p in samples - covered)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_damaged_input_gives_a_translation_or_an_adapter_error_never_a_crash(case: Case) -> None:
    """Truncations and byte flips at fixed positions (seeded): bad input must surface as AdapterError/Problem."""
    data = case.path.read_bytes()
    rng = random.Random(case.name)
    variants = [data[:cut] for cut in range(0, len(data), max(1, len(data) // 40))]
    for _ in range(80):
        damaged = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            damaged[rng.randrange(len(damaged))] = rng.choice(b"|^~&\\\r\n:+?'<>;,\"09Az \x00\xff")
        variants.append(bytes(damaged))
    translate = registry.get(case.format).translate
    for variant in variants:
        with contextlib.suppress(AdapterError):
            translate(variant, case.meta)
