"""A live uvicorn process (real TCP) driven by httpx and by a real FHIR client library (fhirpy)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fhirpy import SyncFHIRClient

from hub.config import Settings
from hub.security.tokens import issue_token


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_up(url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early: {proc.stdout.read().decode() if proc.stdout else ''}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)  # polling a condition with a deadline, not sleeping until green
    raise TimeoutError(f"{url} did not come up")


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Settings]]:
    port = free_port()
    db = Path(tmp_path_factory.mktemp("live")) / "live.db"
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "HUB_DATABASE_URL": f"sqlite+aiosqlite:///{db}", "HUB_BASE_URL": base}
    proc = subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until_up(f"{base}/fhir/metadata", proc)
        yield base, Settings(database_url=env["HUB_DATABASE_URL"], base_url=base)
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_live_server_crud_over_tcp(live_server):
    base, settings = live_server
    token = issue_token(settings, role="admin", org="http://fhir.nl/fhir/NamingSystem/ura|1", subject="live")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"}
    with httpx.Client(base_url=base, headers=headers) as client:
        r = client.post("/fhir/Location", json={"resourceType": "Location", "name": "Live bed"})
        assert r.status_code == 201 and r.headers["location"].startswith(f"{base}/fhir/Location/")
        loc = r.json()
        assert client.get(f"/fhir/Location/{loc['id']}").json()["name"] == "Live bed"
        assert client.get("/fhir/Location?name=live").json()["total"] == 1
        assert client.get("/fhir/metadata").json()["fhirVersion"] == "4.0.1"


def test_fhirpy_client_create_read_search_update(live_server):
    base, settings = live_server
    token = issue_token(settings, role="gp", org="http://fhir.nl/fhir/NamingSystem/agb-z|01000001", subject="fhirpy")
    client = SyncFHIRClient(f"{base}/fhir", authorization=f"Bearer {token}")
    patient = client.resource(
        "Patient",
        name=[{"family": "Bakker", "given": ["Anna"]}],
        gender="female",
        birthDate="1938-04-02",
        identifier=[{"system": "http://fhir.nl/fhir/NamingSystem/bsn", "value": "999990019"}],
    )
    patient.save()
    assert patient.id
    found = client.resources("Patient").search(family="bakker").fetch()
    assert [p.id for p in found] == [patient.id]
    fetched = client.reference("Patient", patient.id).to_resource()
    assert fetched["birthDate"] == "1938-04-02"
    fetched["gender"] = "other"
    fetched.save()
    again = client.reference("Patient", patient.id).to_resource()
    assert again["gender"] == "other" and again["meta"]["versionId"] == "2"
    by_bsn = client.resources("Patient").search(identifier="http://fhir.nl/fhir/NamingSystem/bsn|999990019").fetch()
    assert len(by_bsn) == 1
