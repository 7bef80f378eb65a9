"""Scale-out benchmark (issue 8): throughput of 1 vs 2 API processes on this machine, PostgreSQL + Redis.

    python -m bench.scale [--rounds 3] [--seconds 3] [--connections 32] [--providers 100]

Two servers run side by side on one migrated schema: `uvicorn hub.asgi:app --workers 1` and `--workers 2` (the
same app, Celery task mode, a private redis-server). Interleaved rounds, alternating which server goes first, each
driving with wrk:
- reads: GET /fhir/Location/{id} (the hot read path);
- bed-status writes: PUT /fhir/Location/{id} of a bed with the other operationalStatus, cycling through
  `providers x 4` beds (so concurrent writes rarely meet on one row), each write updating the availability
  aggregate, the shared Redis cache and its pub/sub channel.
Prints requests/s per round and the medians as ratios (2 processes / 1 process). wrk and PostgreSQL share the same
cores, so the ratio shows what a second process buys on this box, not on a dedicated API host.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from bench.core import PG_URL, _schema
from bench.harness import Server, free_port, median, need_wrk, start
from hub.config import Settings
from hub.security.tokens import issue_token

V2_0116 = "http://terminology.hl7.org/CodeSystem/v2-0116"
HUB = "https://zorgnet-hub.nl/fhir"
AGB = "http://fhir.nl/fhir/NamingSystem/agb-z"


def bed(bed_id: str, org_id: str, n: int, status: str) -> dict[str, object]:
    return {"resourceType": "Location", "id": bed_id, "status": "active", "name": f"Bed {n}",
            "operationalStatus": {"system": V2_0116, "code": status},
            "physicalType": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/location-physical-type",
                                         "code": "bd"}]},
            "extension": [{"url": f"{HUB}/StructureDefinition/care-product",
                           "valueCoding": {"system": f"{HUB}/CodeSystem/care-product", "code": "elv-hoog"}}],
            "managingOrganization": {"reference": f"Organization/{org_id}"},
            "address": {"city": "Assen", "postalCode": "9401 AB", "state": "Drenthe"}}


def seed(base: str, token: str, providers: int) -> list[tuple[str, str]]:
    """`providers` Organizations with 4 beds each (PUT with known ids, in transactions); returns (bed, org) ids."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"}
    beds: list[tuple[str, str]] = []
    with httpx.Client(base_url=base, headers=headers, timeout=120) as client:
        for first in range(0, providers, 50):
            entries = []
            for p in range(first, min(providers, first + 50)):
                org_id = f"bench-org-{p}"
                entries.append({"request": {"method": "PUT", "url": f"Organization/{org_id}"}, "resource": {
                    "resourceType": "Organization", "id": org_id, "name": f"Aanbieder {p}", "active": True,
                    "identifier": [{"system": AGB, "value": f"7380{p:04d}"}]}})
                for n in range(4):
                    bed_id = f"bench-bed-{p}-{n}"
                    entries.append({"request": {"method": "PUT", "url": f"Location/{bed_id}"},
                                    "resource": bed(bed_id, org_id, n, "U")})
                    beds.append((bed_id, org_id))
            r = client.post("/fhir", json={"resourceType": "Bundle", "type": "transaction", "entry": entries})
            r.raise_for_status()
    return beds


_WRITE_LUA = """
local beds = {BEDS}
local template = [[{TEMPLATE}]]
local i = 0
wrk.method = "PUT"
wrk.headers["Content-Type"] = "application/fhir+json"
wrk.headers["Authorization"] = "Bearer {TOKEN}"
wrk.headers["Prefer"] = "return=minimal"
request = function()
  i = i + 1
  local b = beds[(i % #beds) + 1]
  local status = (math.floor(i / #beds) % 2 == 0) and "O" or "U"
  local body = string.gsub(string.gsub(string.gsub(template, "@ID@", b[1]), "@ORG@", b[2]), "@STATUS@", status)
  return wrk.format(nil, "/fhir/Location/" .. b[1], nil, body)
end
local statuses = {}
response = function(status, headers, body)
  if status >= 300 and statuses[status] == nil then
    statuses[status] = true
    io.write("non-2xx " .. status .. ": " .. string.sub(body, 1, 300) .. "\\n")
  end
end
"""

_READ_LUA = """
wrk.headers["Authorization"] = "Bearer {TOKEN}"
"""


def run_wrk(url: str, script: str, connections: int, seconds: float) -> tuple[float, int]:
    """Requests/s and non-2xx count of one wrk run."""
    import re

    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    try:
        out = subprocess.run([need_wrk(), "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "-s", f.name,
                              url], capture_output=True, text=True, timeout=seconds + 60).stdout
    finally:
        os.unlink(f.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if bad:
        print("   ", "\n    ".join(line for line in out.splitlines() if line.startswith("non-2xx"))[:2000])
    return rps, int(bad.group(1)) if bad else 0


def write_script(beds: list[tuple[str, str]], token: str) -> str:
    template = json.dumps(bed("@ID@", "@ORG@", 0, "@STATUS@"))
    lua_beds = "{" + ",".join(f'{{"{b}","{o}"}}' for b, o in beds) + "}"
    return _WRITE_LUA.replace("{BEDS}", lua_beds).replace("{TEMPLATE}", template).replace("{TOKEN}", token)


def start_redis() -> tuple[subprocess.Popen[bytes], str]:
    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server is needed (Debian package redis-server)")
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    import redis

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if redis.Redis.from_url(url).ping():
                return proc, url
        except redis.RedisError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("redis-server did not start")


def hub_argv(port: int, workers: int) -> list[str]:
    return [sys.executable, "-m", "uvicorn", "hub.asgi:app", "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(workers), "--log-level", "warning", "--no-access-log"]


def run(rounds: int, seconds: float, connections: int, providers: int) -> dict[str, list[float]]:
    schema = f"bench_scale_{uuid.uuid4().hex[:8]}"
    asyncio.run(_schema(f'CREATE SCHEMA "{schema}"'))
    redis_proc, redis_url = start_redis()
    env = {"HUB_DATABASE_URL": PG_URL, "HUB_DATABASE_SCHEMA": schema, "HUB_REDIS_URL": redis_url,
           "HUB_TASK_MODE": "celery", "HUB_MAX_IN_FLIGHT": "512", "HUB_BASE_URL": "http://127.0.0.1",
           "HUB_DB_POOL_SIZE": "5"}  # 3 processes x (2 x 5 + 5) connections stay well below max_connections
    servers: list[Server] = []
    results: dict[str, list[float]] = {k: [] for k in ("read1", "read2", "write1", "write2")}
    try:
        subprocess.run([sys.executable, "-m", "hub.cli", "migrate"], env={**os.environ, **env}, check=True,
                       capture_output=True, cwd=Path(__file__).resolve().parents[1])
        token = issue_token(Settings(), role="admin", org="http://fhir.nl/fhir/NamingSystem/ura|1", subject="bench")
        port1, port2 = free_port(), free_port()
        one, _ = start(hub_argv(port1, 1), env, "/ready", port1)  # first: publishes profiles/ into the schema
        servers.append(one)
        two, _ = start(hub_argv(port2, 2), env, "/ready", port2)
        servers.append(two)
        beds = seed(one.base, token, providers)
        read_lua, write_lua = _READ_LUA.replace("{TOKEN}", token), write_script(beds, token)
        read_path = f"/fhir/Location/{beds[0][0]}"
        for server in (one, two):  # warm both (connection pools, every worker of the 2-process server)
            run_wrk(server.base + read_path, read_lua, connections, 1)
            run_wrk(server.base, write_lua, connections, 1)
        for r in range(rounds):
            order = [(one, "1"), (two, "2")] if r % 2 == 0 else [(two, "2"), (one, "1")]
            line = []
            for kind in ("read", "write"):
                for server, n in order:
                    if kind == "read":
                        rps, bad = run_wrk(server.base + read_path, read_lua, connections, seconds)
                    else:
                        rps, bad = run_wrk(server.base, write_lua, connections, seconds)
                    assert bad == 0, f"{bad} non-2xx responses ({kind}, {n} process(es))"
                    results[f"{kind}{n}"].append(rps)
                    line.append(f"{kind} x{n} {rps:7.0f}/s")
            print(f"  round {r + 1}: " + ", ".join(line), flush=True)
    finally:
        for server in servers:
            server.stop()
        redis_proc.terminate()
        redis_proc.wait(10)
        asyncio.run(_schema(f'DROP SCHEMA "{schema}" CASCADE'))
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--providers", type=int, default=100, help="providers with 4 beds each")
    args = parser.parse_args()
    print(f"== scale-out benchmark: 1 vs 2 API processes, PostgreSQL + Redis, {os.cpu_count()} cores, "
          f"{args.connections} connections ==")
    r = run(args.rounds, args.seconds, args.connections, args.providers)
    read1, read2, write1, write2 = (median(r[k]) for k in ("read1", "read2", "write1", "write2"))
    print(f"  GET Location by id     1 process {read1:7.0f}/s   2 processes {read2:7.0f}/s   "
          f"ratio {read2 / read1:.2f}")
    print(f"  PUT bed status         1 process {write1:7.0f}/s   2 processes {write2:7.0f}/s   "
          f"ratio {write2 / write1:.2f}")


if __name__ == "__main__":
    main()
