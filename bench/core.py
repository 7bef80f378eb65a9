"""FHIR core benchmark (issue 3): hub vs minimal FastAPI endpoints started beside it, in one interleaved run.

    python -m bench.core [--backend sqlite|postgresql|both] [--rounds 3] [--seconds 3] [--locations 10000]

Prints ratios (median of the rounds), each next to its target. One uvicorn worker each, 16 concurrent clients
(wrk), then 64 clients for the tail-latency check; RSS of the hub process; warm start to the first /fhir/metadata.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import uuid

import httpx

from bench.harness import free_port, median, start, uvicorn_argv, wrk
from hub.config import Settings
from hub.security.tokens import issue_token

PG_URL = os.environ.get("HUB_TEST_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
LOCATION = {
    "resourceType": "Location",
    "status": "active",
    "name": "Bench bed",
    "operationalStatus": {"system": "http://terminology.hl7.org/CodeSystem/v2-0116", "code": "U"},
}


def hub_env(backend: str, tmp: str, schema: str | None, base: str) -> dict[str, str]:
    env = {"HUB_BASE_URL": base, "HUB_MAX_IN_FLIGHT": "512"}
    if backend == "sqlite":
        env["HUB_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp}/bench.db"
    else:
        env["HUB_DATABASE_URL"] = PG_URL
        env["HUB_DATABASE_SCHEMA"] = schema or ""
    return env


async def _schema(sql: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(PG_URL)
    async with engine.begin() as conn:
        await conn.execute(text(sql))
    await engine.dispose()


def seed(base: str, token: str, count: int) -> str:
    """Load `count` Locations via transactions of 500; return the id of one of them."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"}
    with httpx.Client(base_url=base, headers=headers, timeout=120) as client:
        for start_at in range(0, count, 500):
            entries = [
                {
                    "request": {"method": "POST", "url": "Location"},
                    "resource": {**LOCATION, "name": f"Locatie {i:05d} Drenthe"},
                }
                for i in range(start_at, min(count, start_at + 500))
            ]
            r = client.post("/fhir", json={"resourceType": "Bundle", "type": "transaction", "entry": entries})
            r.raise_for_status()
        one = client.get("/fhir/Location?name:exact=Locatie 00042 Drenthe").json()
        return str(one["entry"][0]["resource"]["id"])


def run_backend(backend: str, rounds: int, seconds: float, locations: int) -> dict[str, float]:
    import tempfile

    tmp = tempfile.mkdtemp(prefix="bench-core-")
    schema = f"bench_{uuid.uuid4().hex[:8]}" if backend == "postgresql" else None
    if schema:
        asyncio.run(_schema(f'CREATE SCHEMA "{schema}"'))
    hub_port, base_port = free_port(), free_port()
    base_url = f"http://127.0.0.1:{hub_port}"
    env = hub_env(backend, tmp, schema, base_url)
    settings = Settings(database_url=env["HUB_DATABASE_URL"], base_url=base_url)
    token = issue_token(settings, role="admin", org="http://fhir.nl/fhir/NamingSystem/ura|1", subject="bench")
    if backend == "postgresql":
        import subprocess

        subprocess.run(
            [sys.executable, "-m", "hub.cli", "migrate"], env={**os.environ, **env}, check=True, capture_output=True
        )
    hub, _ = start(uvicorn_argv("hub.asgi:app", hub_port), env, "/fhir/metadata", hub_port)
    baseline, _ = start(uvicorn_argv("bench.baseline_app:app", base_port), {}, "/item", base_port)
    results: dict[str, list[float]] = {k: [] for k in ("post", "get", "tx", "search")}
    try:
        loc_id = seed(hub.base, token, locations)
        body = json.dumps(LOCATION)
        tx_body = json.dumps(
            {
                "resourceType": "Bundle",
                "type": "transaction",
                "entry": [{"request": {"method": "POST", "url": "Location"}, "resource": LOCATION} for _ in range(10)],
            }
        )
        for _ in range(rounds):
            b_post = wrk(
                f"{baseline.base}/item", method="POST", body=body, content_type="application/json", seconds=seconds
            )
            h_post = wrk(f"{hub.base}/fhir/Location", method="POST", body=body, token=token, seconds=seconds)
            b_get = wrk(f"{baseline.base}/item", seconds=seconds)
            h_get = wrk(f"{hub.base}/fhir/Location/{loc_id}", token=token, seconds=seconds)
            h_tx = wrk(f"{hub.base}/fhir", method="POST", body=tx_body, token=token, seconds=seconds)
            h_search = wrk(f"{hub.base}/fhir/Location?name=Locatie%200123", token=token, seconds=seconds)
            for r in (h_post, h_get, h_tx, h_search):
                assert r.non2xx == 0, f"hub answered {r.non2xx} non-2xx responses"
            results["post"].append(h_post.rps / b_post.rps)
            results["get"].append(h_get.rps / b_get.rps)
            results["tx"].append(h_tx.rps * 10 / h_post.rps)
            results["search"].append(h_search.rps / h_get.rps)
            print(
                f"  [{backend}] round: POST {h_post.rps:.0f}/{b_post.rps:.0f} rps, GET {h_get.rps:.0f}/{b_get.rps:.0f},"
                f" tx10 {h_tx.rps:.0f} bundles/s, search {h_search.rps:.0f} rps",
                flush=True,
            )
        before = server_read_buckets(hub.base, token)
        tail = wrk(f"{hub.base}/fhir/Location/{loc_id}", token=token, connections=64, seconds=seconds)
        server_p99 = bucket_p99(before, server_read_buckets(hub.base, token))
        base_tail = wrk(f"{baseline.base}/item", connections=64, seconds=seconds)
        rss = hub.rss_mb()
    finally:
        hub.stop()
        baseline.stop()
    restarted, warm = start(uvicorn_argv("hub.asgi:app", hub_port), env, "/fhir/metadata", hub_port)
    restarted.stop()
    if schema:
        asyncio.run(_schema(f'DROP SCHEMA "{schema}" CASCADE'))
    return {
        "post": median(results["post"]),
        "get": median(results["get"]),
        "tx": median(results["tx"]),
        "search": median(results["search"]),
        "tail": tail.p99_ms / tail.p50_ms,
        "tail_p50": tail.p50_ms,
        "tail_p99": tail.p99_ms,
        "tail_503": tail.non2xx,
        "server_p99": server_p99,
        "base_tail": base_tail.p99_ms / base_tail.p50_ms,
        "rss": rss,
        "warm": warm,
    }


def report(backend: str, r: dict[str, float]) -> None:
    rows = [
        ("POST Location / minimal FastAPI POST", r["post"], ">=", 0.35),
        ("GET Location by id / minimal FastAPI GET", r["get"], ">=", 0.5),
        ("transaction(10) entries/s / single POST/s", r["tx"], ">=", 0.7),
        ("search name= over 10k / GET by id", r["search"], ">=", 0.3),
        (
            f"64 clients p99/p50 ({r['tail_p99']:.1f}/{r['tail_p50']:.1f} ms, {r['tail_503']:.0f} x 503)",
            r["tail"],
            "<=",
            10,
        ),
        ("hub RSS MB after the run", r["rss"], "<=", 250),
        ("warm start to first /fhir/metadata (s)", r["warm"], "<=", 3),
    ]
    print(f"\n== FHIR core benchmark on {backend} ==")
    for label, value, op, target in rows:
        ok = value >= target if op == ">=" else value <= target
        print(f"  {label:62s} {value:8.2f}  (target {op} {target})  {'PASS' if ok else 'FAIL'}")
    print(f"  for reading the tail figure (no targets): the minimal FastAPI app under the same 64 clients, same run: "
          f"p99/p50 {r['base_tail']:.2f}; the hub's own handling time of those reads (its /metrics histogram): "
          f"p99 <= {r['server_p99'] * 1000:.1f} ms")


def server_read_buckets(base: str, token: str) -> dict[float, float]:
    """Cumulative counts of the hub's `hub_request_seconds` histogram for GET reads, by upper bound."""
    text = httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=30).text
    out: dict[float, float] = {}
    for line in text.splitlines():
        if line.startswith("hub_request_seconds_bucket") and 'interaction="read"' in line and 'method="GET"' in line:
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            out[float("inf") if bound == "+Inf" else float(bound)] = float(line.rsplit(" ", 1)[1])
    return out


def bucket_p99(before: dict[float, float], after: dict[float, float]) -> float:
    """Upper bound of the bucket holding the 99th percentile of the requests between two scrapes."""
    counts = {bound: after[bound] - before.get(bound, 0.0) for bound in sorted(after)}
    total = counts.get(float("inf"), 0.0)
    for bound, cumulative in counts.items():
        if total and cumulative >= 0.99 * total:
            return bound
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", default="both", choices=["sqlite", "postgresql", "both"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--locations", type=int, default=10_000)
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    for backend in backends:
        report(backend, run_backend(backend, args.rounds, args.seconds, args.locations))


if __name__ == "__main__":
    main()
