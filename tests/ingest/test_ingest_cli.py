"""`hub ingest` as a real command against a temporary SQLite database: one outcome per file, exit status."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import orjson
from ingest_cases import BED, HUNZEHOF, ROOT, SAMPLES

from hub.cli import main


def _hub(db: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env["HUB_DATABASE_URL"] = f"sqlite+aiosqlite:///{db}"
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "hub.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_ingests_files_as_the_sender_and_fails_on_a_broken_one(tmp_path: Path) -> None:
    db = tmp_path / "hub.db"
    broken = tmp_path / "broken.hl7"
    broken.write_bytes((SAMPLES / "hl7v2" / "adt_a01_opname.hl7").read_bytes().replace(b"999990019", b"999990018"))
    a20, a01 = SAMPLES / "hl7v2" / "adt_a20_bedstatus.hl7", SAMPLES / "hl7v2" / "adt_a01_opname.hl7"
    first = _hub(
        db,
        tmp_path,
        "ingest",
        "--format",
        "hl7v2",
        "--sender",
        HUNZEHOF,
        "--role",
        "vvt-provider",
        str(a20),
        str(broken),
        str(a01),
    )
    assert first.returncode == 1, first.stderr
    lines = [line for line in first.stdout.splitlines() if not line.startswith("  ")]
    assert lines[0].startswith(f"{a20}: OK 201 hl7v2 ADT^A20 ZNZ-20260309-000417 stored")
    assert lines[1].startswith(f"{broken}: ERROR 422 invalid:") and "PID-3" in lines[1]
    assert lines[2].startswith(f"{a01}: OK 201")
    again = _hub(db, tmp_path, "ingest", "--format", "hl7v2", "--sender", HUNZEHOF, "--role", "vvt-provider", str(a01))
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith(f"{a01}: DUPLICATE 200")
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT content, owner_org FROM resources WHERE res_type = 'Location'").fetchall()
        provenances = conn.execute("SELECT count(*) FROM resources WHERE res_type = 'Provenance'").fetchone()[0]
    beds = [
        (orjson.loads(c), owner)
        for c, owner in rows
        if any(i.get("system") == BED for i in orjson.loads(c).get("identifier", []))
    ]
    assert len(beds) == 1
    assert beds[0][0]["operationalStatus"]["code"] == "O" and beds[0][1] == HUNZEHOF
    assert provenances == 2


def test_cli_refuses_bad_arguments_before_touching_the_database() -> None:
    assert main(["ingest", "--format", "hl7v2", "--sender", "no-bar", "x.hl7"]) == 2
    assert main(["ingest", "--format", "hl7v2", "--role", "superuser", "x.hl7"]) == 2
