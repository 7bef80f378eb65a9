"""Real processes for the production tests: hub API processes (uvicorn), Celery workers, and PRIVATE PostgreSQL and
Redis servers that a fault test may stop and restart (the shared services on 5432/6379 are never touched).

Everything is bounded: each start waits with a deadline, each stop sends SIGTERM, then SIGKILL. Logs go to files
so a failing assertion can show the tail of what a process said.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from hub.config import Settings
from hub.security.tokens import issue_token

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
SHARED_PG = os.environ.get("HUB_TEST_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
AGB = "http://fhir.nl/fhir/NamingSystem/agb-z"
URA = "http://fhir.nl/fhir/NamingSystem/ura"
ADMIN_ORG = f"{URA}|90000000"
FHIR_JSON = "application/fhir+json"


def missing(what: str) -> None:
    """Under CI a missing service or binary fails the test; on a workstation it skips."""
    (pytest.fail if os.environ.get("CI") else pytest.skip)(what)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: Callable[[], Any], what: str, timeout: float = 20.0, every: float = 0.05) -> Any:
    """Poll `check` until it returns something truthy; fail with `what` at the deadline (never sleeps to green)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


async def await_until(check: Callable[[], Any], what: str, timeout: float = 20.0, every: float = 0.05) -> Any:
    """`wait_until` for coroutine checks."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


def tail(path: Path, chars: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


def token(role: str = "admin", org: str | None = ADMIN_ORG, subject: str | None = None) -> str:
    """A bearer token every hub process accepts (they all run with the same default dev signing key)."""
    return issue_token(Settings(), role=role, org=org, subject=subject or f"prod-test-{role}")


def headers(role: str = "admin", org: str | None = ADMIN_ORG, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(role, org)}", "Content-Type": FHIR_JSON, **extra}


# ---------------------------------------------------------------------------------------------- processes
@dataclass
class Process:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def output(self) -> str:
        return tail(self.log)


def spawn(name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> Process:
    log = log_dir / f"{name}.log"
    handle = log.open("ab")
    proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT,
                            start_new_session=True)
    handle.close()
    return Process(name, proc, log)


def hub_env(database_url: str, schema: str | None, redis_url: str | None, base_url: str,
            **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env |= {"HUB_DATABASE_URL": database_url, "HUB_BASE_URL": base_url, "HUB_TASK_MODE": "celery" if redis_url
            else "inprocess", "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT)]), "PYTHONUNBUFFERED": "1"}
    if schema:
        env["HUB_DATABASE_SCHEMA"] = schema
    if redis_url:
        env["HUB_REDIS_URL"] = redis_url
    return env | extra


@dataclass
class Api(Process):
    base: str = ""

    def client(self, **kw: Any) -> httpx.Client:
        return httpx.Client(base_url=self.base, timeout=kw.pop("timeout", 15), **kw)


def start_api(name: str, env: dict[str, str], log_dir: Path, *, app: str = "hub.asgi:app", workers: int = 1) -> Api:
    """`python -m uvicorn hub.asgi:app` on a free port; returns once the process is started (see `wait_ready`)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**env, "HUB_BASE_URL": base}
    argv = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port), "--workers",
            str(workers), "--log-level", "warning", "--no-access-log", "--timeout-graceful-shutdown", "3"]
    p = spawn(name, argv, env, log_dir)
    return Api(p.name, p.proc, p.log, base)


def wait_ready(api: Api, timeout: float = 45.0) -> None:
    def ready() -> bool:
        assert api.alive(), f"{api.name} exited:\n{api.output()}"
        try:
            return httpx.get(f"{api.base}/ready", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    wait_until(ready, f"{api.name} to be ready", timeout, every=0.1)


def start_worker(name: str, env: dict[str, str], log_dir: Path, *, app: str = "hub.celery_app") -> Process:
    """A Celery worker (solo pool, one task at a time) named `name@host`."""
    argv = [sys.executable, "-m", "celery", "-A", app, "worker", "-P", "solo", "-n", f"{name}@%h",
            "--loglevel=INFO", "--without-gossip", "--without-mingle"]
    return spawn(name, argv, env, log_dir)


def wait_worker(worker: Process, timeout: float = 45.0) -> None:
    def ready() -> bool:
        assert worker.alive(), f"{worker.name} exited:\n{worker.output()}"
        return " ready." in worker.output() or "ready.\n" in worker.output()

    wait_until(ready, f"{worker.name} to be ready", timeout, every=0.1)


# ---------------------------------------------------------------------------------------------- schemas
def run_sql(url: str, *statements: str) -> None:
    async def run() -> None:
        from sqlalchemy import text
        from sqlalchemy.ext.asyncio import create_async_engine

        engine = create_async_engine(url)
        try:
            async with engine.begin() as conn:
                for sql in statements:
                    await conn.execute(text(sql))
        finally:
            await engine.dispose()

    _in_thread(lambda: asyncio.run(run()))


def query(url: str, sql: str, schema: str | None = None, **params: Any) -> list[Any]:
    async def run() -> list[Any]:
        from sqlalchemy import text
        from sqlalchemy.ext.asyncio import create_async_engine

        connect_args = {"server_settings": {"search_path": schema}} if schema else {}
        engine = create_async_engine(url, connect_args=connect_args)
        try:
            async with engine.connect() as conn:
                return list((await conn.execute(text(sql), params)).all())
        finally:
            await engine.dispose()

    result: list[Any] = _in_thread(lambda: asyncio.run(run()))
    return result


def _in_thread(fn: Callable[[], Any]) -> Any:
    """Blocking set-up with its own event loop, outside a test's running loop."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fn).result()


def migrate(database_url: str, schema: str | None) -> None:
    """`python -m hub.cli migrate` as a deployment runs it."""
    env = hub_env(database_url, schema, None, "http://127.0.0.1")
    done = subprocess.run([sys.executable, "-m", "hub.cli", "migrate"], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def shared_pg_reachable() -> bool:
    from urllib.parse import urlsplit

    parts = urlsplit(SHARED_PG.replace("+asyncpg", ""))
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5432), timeout=2):
            return True
    except OSError:
        return False


@dataclass
class Schema:
    url: str
    name: str

    @classmethod
    def create(cls, prefix: str) -> Schema:
        if not shared_pg_reachable():
            missing(f"PostgreSQL not reachable at {SHARED_PG}")
        schema = cls(SHARED_PG, f"{prefix}_{uuid.uuid4().hex[:10]}")
        run_sql(SHARED_PG, f'CREATE SCHEMA "{schema.name}"')
        migrate(SHARED_PG, schema.name)
        return schema

    def drop(self) -> None:
        run_sql(self.url, f'DROP SCHEMA IF EXISTS "{self.name}" CASCADE')

    def query(self, sql: str, **params: Any) -> list[Any]:
        return query(self.url, sql, self.name, **params)


# ---------------------------------------------------------------------------------------------- private Redis
@dataclass
class PrivateRedis:
    """`redis-server` on a free port. Without persistence a restart loses every key (the worst case: a cache-only
    Redis, or a fail-over to an empty one); `persistent=True` keeps an append-only file, as docker/compose.yaml does."""

    port: int
    log_dir: Path
    persistent: bool = False
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @classmethod
    def start_new(cls, log_dir: Path, *, persistent: bool = False) -> PrivateRedis:
        if shutil.which("redis-server") is None:
            missing("redis-server is not installed (Debian package redis-server)")
        server = cls(free_port(), log_dir, persistent)
        server.start()
        return server

    def start(self) -> None:
        durability = ["--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.log_dir),
                      "--appendfilename", f"redis-{self.port}.aof"] if self.persistent else ["--appendonly", "no"]
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", *durability,
                "--daemonize", "no", "--protected-mode", "no"]
        with (self.log_dir / f"redis-{self.port}.log").open("ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(self.ping, f"redis-server on {self.port}", 10)

    def ping(self) -> bool:
        import redis

        try:
            return bool(redis.Redis.from_url(self.url, socket_timeout=1).ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


# ---------------------------------------------------------------------------------------------- private PostgreSQL
def pg_bindir() -> Path | None:
    configured = os.environ.get("HUB_TEST_PG_BIN")
    candidates = [configured] if configured else sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for candidate in candidates:
        if candidate and (Path(candidate) / "initdb").exists() and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    found = shutil.which("pg_ctl")
    return Path(found).parent if found and (Path(found).parent / "initdb").exists() else None


@dataclass
class PrivatePostgres:
    """A throw-away cluster (initdb into a temp dir, trust auth) on a free port. PostgreSQL refuses to run as
    root, so as root every server command runs as the `postgres` user (runuser)."""

    bindir: Path
    root: Path
    port: int
    as_user: list[str] = field(default_factory=list)

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    @classmethod
    def create(cls) -> PrivatePostgres:
        bindir = pg_bindir()
        if bindir is None:
            missing("PostgreSQL server binaries (initdb, pg_ctl) not found; set HUB_TEST_PG_BIN")
        assert bindir is not None
        root = Path(tempfile.mkdtemp(prefix="hub-pg-"))
        as_user: list[str] = []
        if os.geteuid() == 0:
            runuser = shutil.which("runuser")
            if runuser is None:
                missing("runuser is needed to run PostgreSQL as the postgres user")
            as_user = [str(runuser), "-u", "postgres", "--"]
            shutil.chown(root, "postgres", "postgres")
        server = cls(bindir, root, free_port(), as_user)
        server._run("initdb", "-D", str(server.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                    "--no-sync", "--locale=C")
        with (server.data / "postgresql.conf").open("a") as conf:
            conf.write(f"\nlisten_addresses = '127.0.0.1'\nport = {server.port}\nunix_socket_directories = '{root}'\n"
                       "fsync = on\nsynchronous_commit = on\nmax_connections = 100\nshared_buffers = 32MB\n")
        server.start()
        return server

    def _run(self, tool: str, *args: str, timeout: float = 60) -> str:
        done = subprocess.run([*self.as_user, str(self.bindir / tool), *args], capture_output=True, text=True,
                              timeout=timeout, cwd=self.root)
        assert done.returncode == 0, f"{tool} {args}: {done.stdout}{done.stderr}\n{tail(self.root / 'server.log')}"
        return done.stdout

    def pg_ctl(self, *args: str) -> str:
        return self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), *args)

    def start(self) -> None:
        self.pg_ctl("-w", "-t", "30", "start")

    def stop(self, mode: str = "fast") -> None:
        self.pg_ctl("-w", "-t", "30", "-m", mode, "stop")

    def restart(self, mode: str = "fast") -> None:
        self.pg_ctl("-w", "-t", "30", "-m", mode, "restart")

    def is_running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def destroy(self) -> None:
        if self.is_running():
            with contextlib.suppress(AssertionError):
                self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


# ---------------------------------------------------------------------------------------------- region and referrals
GP_ORG = f"{AGB}|01000001"
COORDINATOR_ORG = f"{URA}|90000001"


@dataclass
class Provider:
    agb: str
    name: str
    postcode: str
    beds: str  # one v2-0116 status per elv-hoog bed, e.g. "UUO"
    org_id: str = ""
    bed_ids: list[str] = field(default_factory=list)

    @property
    def org(self) -> str:
        return f"{AGB}|{self.agb}"


def create(client: httpx.Client, resource: dict[str, Any], role_headers: dict[str, str] | None = None) -> str:
    r = client.post(f"/fhir/{resource['resourceType']}", json=resource, headers=role_headers or headers())
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def load_region(client: httpx.Client, providers: list[Provider], product: str = "elv-hoog") -> list[Provider]:
    """Organizations (by the admin), then each provider's HealthcareService and bed Locations (by the provider
    itself, so it may later set their status), over HTTP."""
    from hub.referrals import vocabulary as v

    for p in providers:
        address = {"city": "Assen", "postalCode": p.postcode, "state": "Drenthe", "country": "NL"}
        p.org_id = create(client, {"resourceType": "Organization", "name": p.name, "active": True,
                                   "address": [address], "identifier": [{"system": AGB, "value": p.agb}]})
        own = headers("vvt-provider", p.org)
        create(client, {"resourceType": "HealthcareService", "active": True, "name": f"{product} {p.name}",
                        "providedBy": {"reference": f"Organization/{p.org_id}"},
                        "type": [{"coding": [{"system": v.CARE_PRODUCT, "code": product}]}]}, own)
        p.bed_ids = [create(client, bed(p, n, status, product), own) for n, status in enumerate(p.beds, start=1)]
    return providers


def bed(p: Provider, n: int, status: str, product: str = "elv-hoog") -> dict[str, Any]:
    from hub.referrals import vocabulary as v

    return {"resourceType": "Location", "status": "active", "name": f"Bed {n} {p.name}",
            "operationalStatus": {"system": v.V2_0116, "code": status},
            "physicalType": {"coding": [{"system": v.PHYSICAL_TYPE, "code": "bd"}]},
            "extension": [{"url": v.CARE_PRODUCT_EXT, "valueCoding": {"system": v.CARE_PRODUCT, "code": product}}],
            "managingOrganization": {"reference": f"Organization/{p.org_id}"},
            "address": {"city": "Assen", "postalCode": p.postcode, "state": "Drenthe", "country": "NL"}}


def referral(product: str = "elv-hoog", postcode: str = "9401 ZZ") -> dict[str, Any]:
    """A complete acute bed referral ServiceRequest from the GP practice (see hub/referrals/README.md)."""
    from hub.referrals import vocabulary as v

    return {"resourceType": "ServiceRequest", "status": "active", "intent": "order", "priority": "urgent",
            "category": [{"coding": [{"system": v.SNOMED, "code": v.REFERRAL_CATEGORY}]}],
            "code": {"coding": [{"system": v.CARE_PRODUCT, "code": product}]},
            "subject": {"reference": f"Patient/p-{uuid.uuid4().hex[:8]}"},
            "requester": {"identifier": {"system": AGB, "value": GP_ORG.split("|")[1]}, "display": "Huisarts"},
            "authoredOn": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "extension": [{"url": v.POSTCODE_EXT, "valueString": postcode}]}


def set_bed_status(client: httpx.Client, provider: Provider, bed_id: str, code: str) -> httpx.Response:
    body = {"resourceType": "Parameters", "parameter": [{"name": "status", "valueCode": code}]}
    return client.post(f"/fhir/Location/{bed_id}/$set-status", json=body,
                       headers=headers("vvt-provider", provider.org))


def free_beds(client: httpx.Client, org_id: str, product: str = "elv-hoog") -> int | None:
    """Free beds of one provider × product in the availability figures (/api/availability), None if absent."""
    r = client.get("/api/availability", params={"organization": f"Organization/{org_id}", "product": product},
                   headers=headers())
    assert r.status_code == 200, r.text
    rows = r.json()["rows"]
    return sum(int(row["free"]) for row in rows) if rows else None


# ---------------------------------------------------------------------------------------------- webhook receiver
class Receiver:
    """A local rest-hook endpoint (another process can reach it, respx could not): records every POST, answers
    200 (or `status`)."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.received: list[tuple[dict[str, str], bytes]] = []
        self.status = 200
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def snapshot(self) -> list[tuple[dict[str, str], bytes]]:
        with self._lock:
            return list(self.received)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def subscribe_gp(client: httpx.Client, endpoint: str, secret: str) -> str:
    """A GP rest-hook Subscription on its referral Tasks, with its HMAC secret set."""
    sub = {"resourceType": "Subscription", "status": "requested", "reason": "follow my referrals",
           "criteria": "Task?code=http://terminology.hl7.org/CodeSystem/task-code|fulfill",
           "channel": {"type": "rest-hook", "endpoint": endpoint, "payload": FHIR_JSON}}
    sub_id = create(client, sub, headers("gp", GP_ORG))
    body = {"resourceType": "Parameters", "parameter": [{"name": "secret", "valueString": secret}]}
    r = client.post(f"/fhir/Subscription/{sub_id}/$set-secret", json=body, headers=headers("gp", GP_ORG))
    assert r.status_code == 200, r.text
    return sub_id


# ---------------------------------------------------------------------------------------------- SSE client
class EventStream:
    """Reads `/api/availability/stream` in a thread and keeps every (event, data) it sees."""

    def __init__(self, base: str, path: str = "/api/availability/stream", **params: str) -> None:
        import threading

        self.events: list[tuple[str, Any]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._client = httpx.Client(base_url=base, timeout=httpx.Timeout(5, read=30))
        self._thread = threading.Thread(target=self._run, args=(path, params), daemon=True)
        self._thread.start()
        wait_until(lambda: self.named("ready"), f"the SSE stream at {base} to say ready", 15)

    def _run(self, path: str, params: dict[str, str]) -> None:
        import orjson

        event = "message"
        try:
            with self._client.stream("GET", path, params=params, headers=headers()) as response:
                for line in response.iter_lines():
                    if self._stop.is_set():
                        return
                    if line.startswith("event:"):
                        event = line.split(":", 1)[1].strip()
                    elif line.startswith("data:"):
                        with self._lock:
                            self.events.append((event, orjson.loads(line.split(":", 1)[1])))
        except httpx.HTTPError as exc:
            with self._lock:
                self.events.append(("closed", repr(exc)))
            return
        with self._lock:
            self.events.append(("closed", "end of stream"))

    def named(self, event: str) -> list[Any]:
        with self._lock:
            return [data for name, data in self.events if name == event]

    def close(self) -> None:
        """Stop recording; the reader thread (a daemon) ends when the server closes the connection."""
        self._stop.set()
        self._thread.join(0.1)
