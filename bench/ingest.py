"""Ingest benchmark (issue 5): HL7 v2 over MLLP and the bed-overview CSV into the store, against bare parsing.

    python -m bench.ingest [--backend sqlite|postgresql] [--messages N] [--rows N] [--files N] [--rounds 3] [--quick]

One hub process (`uvicorn hub.asgi:app`, one worker) with its MLLP listener on (HUB_MLLP_PORT), on SQLite (a temp
file) or PostgreSQL (a private schema, migrated with `hub migrate`, dropped afterwards). Interleaved rounds
(alternating which side goes first), the median of the rounds:

1. HL7 v2 messages/s: a real TCP client sends MLLP-framed ADT^A20 bed-status messages (bed, status, MSH-10 and
   event time differ, so every message is new and applied) and waits for each ACK (must be AA); against
   `adapters.hl7v2.translate` of the same messages in a loop (no store, no I/O);
2. spreadsheet rows/s: `POST /ingest/bed-csv` of generated overview files (providers x products rows in the format
   of the shared sample `beddenoverzicht_drenthe_2026-03-09.csv`, a new date per file so each is new); against
   `adapters.bed_csv.translate` of the same files.

Prints both rates per round and the median ratio (store / bare parse), plus which parsing library each adapter uses.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx

from adapters import bed_csv, hl7v2
from adapters.base import SourceMeta
from adapters.hl7v2 import frame, unframe
from bench.core import _schema, hub_env
from bench.harness import free_port, median, start, uvicorn_argv
from hub.config import Settings
from hub.security.tokens import issue_token

AGB = "http://fhir.nl/fhir/NamingSystem/agb-z"
HUNZEHOF = f"{AGB}|73730001"
COORDINATION_POINT = f"{AGB}|73739999"
WARD_PRODUCTS = {"ELV-ZW": "elv-hoog", "ELV-LC": "elv-laag"}
HUNZEHOF_CONFIG = {
    "role": "vvt-provider",
    "name": "Zorggroep Noorderzand, De Hunzehof",
    "hl7Sources": [{"application": "YSIS", "facility": "ZNZ-ASSEN"}],
    "config": {"ward_products": WARD_PRODUCTS},
}
BED_STATUSES = ("O", "U", "H", "C", "K", "I")  # HL7 table 0116
PRODUCTS = ("ELV laag complex", "ELV hoog complex", "ELV palliatief", "Crisisbed Wlz", "GRZ")
HEADER = "Datum;Zorgaanbieder;AGB;Locatie;Plaats;Product;Capaciteit;Bezet;Vrij;Verwacht vrij;Contact;Opmerking"
PLACES = ("Assen", "Beilen", "Rolde", "Emmen", "Hoogeveen", "Meppel", "Coevorden", "Westerbork")

LIBRARIES = (
    (
        "hl7v2",
        "python-hl7 for segment/field splitting (separators read from MSH-1/MSH-2, so ZorgDomein's `_` "
        "repetition works); own code around it: MLLP framing, \\n and \\r\\n terminators, MSH-18 charset "
        "before decoding, own unescape (hl7v2_message)",
    ),
    (
        "bed-csv",
        "stdlib csv: delimiter picked by the header row with the most known columns (csv.Sniffer is "
        "fooled by title rows and decimal commas), physical line numbers kept for Problems",
    ),
    ("bed-xlsx", "openpyxl read_only + data_only: streams rows, cached formula results; zip-bomb check first"),
    (
        "medvri",
        "own Edifact tokenizer (adapters/edifact.py): pydifact rejects the Dutch qualified tags "
        "(DET:1, TXT:3) and validates against UN/EDIFACT directories MEDVRI is not part of",
    ),
    (
        "iwmo",
        "defusedxml.ElementTree: hardened XML (size limit, no DOCTYPE/ENTITY: XXE, billion laughs); lxml "
        "is a project dependency but the adapter does not use it",
    ),
    ("fhir", "orjson: FHIR JSON passes through, only wrapped into a transaction Bundle"),
)


# ---------------------------------------------------------------- inputs


def a20(seq: int, tag: str, when: datetime) -> bytes:
    """One ADT^A20 bed-status message: bed, status, MSH-10 and event time differ per `seq`."""
    ward = "ELV-ZW" if seq % 2 == 0 else "ELV-LC"
    room, bed_no = 10 + (seq // 4) % 40, 1 + seq % 4
    status = BED_STATUSES[seq % len(BED_STATUSES)]
    ts = when.strftime("%Y%m%d%H%M%S") + "+0100"
    segments = [
        f"MSH|^~\\&|YSIS|ZNZ-ASSEN|ZORGNETHUB|COORD-DRENTHE|{ts}||ADT^A20^ADT_A20|BENCH-{tag}-{seq:06d}|P|2.5"
        "|||AL|NE|NLD|8859/1",
        f"EVN|A20|{ts}|||JBAKKER^Bakker^J.^^^^^^ZNZ-ASSEN",
        f"NPU|{ward}^K{room}^{bed_no}^ZNZ-ASSEN^^N^HUNZEHOF^2|{status}^^HL70116",
    ]
    return ("\r".join(segments) + "\r").encode("latin-1")


def hl7_batch(count: int, round_no: int, base: datetime) -> list[bytes]:
    start_at = base + timedelta(hours=round_no)
    return [a20(i, f"R{round_no}", start_at + timedelta(seconds=i)) for i in range(count)]


def overview_csv(rows: int, day: date, salt: int) -> bytes:
    """A bed overview with `rows` rows (providers x PRODUCTS), title row, header and total row like the sample."""
    lines = [f"Beddenoverzicht coördinatiepunt Drenthe - stand {day:%d-%m-%Y} 08:15;;;;;;;;;;", "", HEADER]
    total_cap = total_occ = total_free = 0
    for i in range(rows):
        provider, product = divmod(i, len(PRODUCTS))
        capacity = 2 + (provider + product + salt) % 9
        occupied = (provider * 7 + product * 3 + salt) % (capacity + 1)
        free = capacity - occupied
        total_cap, total_occ, total_free = total_cap + capacity, total_occ + occupied, total_free + free
        agb = f"7374{provider:04d}"
        place = PLACES[provider % len(PLACES)]
        expected = (day + timedelta(days=2)).strftime("%d-%m-%Y") if free == 0 else ""
        lines.append(
            f"{day:%d-%m-%Y};Zorgaanbieder {provider};{agb};Locatie {provider};{place};{PRODUCTS[product]};"
            f"{capacity};{occupied};{free};{expected};0592-{100000 + provider};"
        )
    lines.append(f"Totaal;;;;;;{total_cap};{total_occ};{total_free};;;")
    return ("\r\n".join(lines) + "\r\n").encode("utf-8-sig")


# ---------------------------------------------------------------- measuring


def bare_rate(translate: Any, items: list[bytes], meta: SourceMeta, per_item: int) -> float:
    """Units/s of the pure adapter over `items` (each counts `per_item` units)."""
    t0 = time.perf_counter()
    for item in items:
        translate(item, meta)
    return len(items) * per_item / (time.perf_counter() - t0)


def mllp_rate(port: int, messages: list[bytes]) -> float:
    """Messages/s over one MLLP connection, one message in flight, each ACK awaited and checked."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as conn:
        t0 = time.perf_counter()
        buffer = b""
        for message in messages:
            conn.sendall(frame(message))
            payloads: list[bytes] = []
            while not payloads:
                chunk = conn.recv(65536)
                if not chunk:
                    raise RuntimeError("MLLP connection closed before the ACK arrived")
                payloads, buffer = unframe(buffer + chunk)
            msa = next(s for s in payloads[0].decode("latin-1").split("\r") if s.startswith("MSA")).split("|")
            if msa[1] != "AA":
                raise RuntimeError(f"MLLP answered {msa[1]}: {'|'.join(msa[2:])}")
        return len(messages) / (time.perf_counter() - t0)


def http_rate(client: httpx.Client, token: str, files: list[bytes], rows: int) -> float:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "text/csv"}
    t0 = time.perf_counter()
    for body in files:
        response = client.post("/ingest/bed-csv", content=body, headers=headers)
        if response.status_code != 201:
            raise RuntimeError(f"POST /ingest/bed-csv answered {response.status_code}: {response.text[:500]}")
    return len(files) * rows / (time.perf_counter() - t0)


def wait_for_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"the MLLP listener did not open port {port}")


def run(backend: str, messages: int, rows: int, files: int, rounds: int) -> dict[str, Any]:
    tmp = tempfile.mkdtemp(prefix="bench-ingest-")
    schema = f"bench_ingest_{uuid.uuid4().hex[:8]}" if backend == "postgresql" else None
    if schema:
        asyncio.run(_schema(f'CREATE SCHEMA "{schema}"'))
    port, mllp_port = free_port(), free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {**hub_env(backend, tmp, schema, base_url), "HUB_MLLP_PORT": str(mllp_port), "HUB_MLLP_HOST": "127.0.0.1"}
    settings = Settings(database_url=env["HUB_DATABASE_URL"], base_url=base_url)
    admin = issue_token(settings, role="admin", org="http://fhir.nl/fhir/NamingSystem/ura|1", subject="bench")
    coordinator = issue_token(settings, role="coordinator", org=COORDINATION_POINT, subject="bench")
    hub = None
    results: dict[str, list[float]] = {k: [] for k in ("mllp", "hl7_bare", "csv", "csv_bare")}
    try:
        if schema:
            subprocess.run(
                [sys.executable, "-m", "hub.cli", "migrate"], env={**os.environ, **env}, check=True, capture_output=True
            )
        hub, startup = start(uvicorn_argv("hub.asgi:app", port), env, "/fhir/metadata", port)
        wait_for_port(mllp_port)
        with httpx.Client(base_url=hub.base, timeout=300) as client:
            r = client.put(
                f"/ingest/config/{quote(HUNZEHOF, safe='')}",
                json=HUNZEHOF_CONFIG,
                headers={"Authorization": f"Bearer {admin}"},
            )
            r.raise_for_status()
            now = datetime.now(UTC)
            hl7_meta = SourceMeta(
                received_at=now, sender=HUNZEHOF, sender_kind="vvt-provider", config={"ward_products": WARD_PRODUCTS}
            )
            csv_meta = SourceMeta(received_at=now, sender=COORDINATION_POINT, sender_kind="coordinator")
            base_time = datetime(2026, 3, 9, 6, 0, 0)
            # warm-up (not counted): first connection, first transaction, first file
            mllp_rate(mllp_port, [a20(0, "WARM", base_time - timedelta(days=1))])
            http_rate(client, coordinator, [overview_csv(min(rows, 10), date(2026, 1, 1), 0)], min(rows, 10))
            for n in range(rounds):
                batch = hl7_batch(messages, n, base_time)
                sheets = [overview_csv(rows, date(2026, 3, 9) + timedelta(days=n * files + f), n) for f in range(files)]
                steps = [
                    ("hl7_bare", lambda b=batch: bare_rate(hl7v2.translate, b, hl7_meta, 1)),
                    ("mllp", lambda b=batch: mllp_rate(mllp_port, b)),
                    ("csv_bare", lambda s=sheets: bare_rate(bed_csv.translate, s, csv_meta, rows)),
                    ("csv", lambda s=sheets: http_rate(client, coordinator, s, rows)),
                ]
                if n % 2:
                    steps = [steps[1], steps[0], steps[3], steps[2]]
                for key, step in steps:
                    results[key].append(step())
                print(
                    f"  [{backend}] round {n + 1}: MLLP {results['mllp'][-1]:.1f} msg/s vs bare "
                    f"{results['hl7_bare'][-1]:.0f} msg/s; bed-csv {results['csv'][-1]:.1f} rows/s vs bare "
                    f"{results['csv_bare'][-1]:.0f} rows/s",
                    flush=True,
                )
    finally:
        if hub is not None:
            hub.stop()
        if schema:
            asyncio.run(_schema(f'DROP SCHEMA "{schema}" CASCADE'))
    figures: dict[str, Any] = {key: median(values) for key, values in results.items()}
    figures["hl7_ratio"] = figures["mllp"] / figures["hl7_bare"]
    figures["csv_ratio"] = figures["csv"] / figures["csv_bare"]
    figures["startup_s"] = startup
    figures["rounds"] = results
    return figures


def report(backend: str, args: argparse.Namespace, f: dict[str, Any]) -> None:
    print(
        f"\n== ingest benchmark on {backend}: {args.messages} HL7 messages, {args.files} x {args.rows}-row CSV "
        f"per round, median of {args.rounds} interleaved rounds =="
    )
    print(f"  HL7 v2 ADT^A20 via MLLP into the store      {f['mllp']:10.1f} msg/s")
    print(f"  HL7 v2 bare adapters.hl7v2.translate        {f['hl7_bare']:10.1f} msg/s")
    print(f"  ratio MLLP+store / bare parse               {f['hl7_ratio']:10.4f}  (1/{1 / f['hl7_ratio']:.0f})")
    print(f"  bed-csv POST /ingest/bed-csv into the store {f['csv']:10.1f} rows/s")
    print(f"  bed-csv bare adapters.bed_csv.translate     {f['csv_bare']:10.1f} rows/s")
    print(f"  ratio HTTP+store / bare parse               {f['csv_ratio']:10.4f}  (1/{1 / f['csv_ratio']:.0f})")
    print("\n== parsing libraries ==")
    for fmt, why in LIBRARIES:
        print(f"  {fmt:9s} {why}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest")
    parser.add_argument("--backend", default="sqlite", choices=["sqlite", "postgresql"])
    parser.add_argument("--messages", type=int, default=None, help="HL7 messages per round (default 300)")
    parser.add_argument(
        "--rows",
        type=int,
        default=None,
        help="rows per CSV file (default 400; above ~415 the Bundle exceeds the hub limit of 1000 entries)",
    )
    parser.add_argument("--files", type=int, default=None, help="CSV files per round (default 1)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for the test suite")
    args = parser.parse_args(argv)
    quick = {"messages": 20, "rows": 25, "files": 1} if args.quick else {"messages": 300, "rows": 400, "files": 1}
    for key, value in quick.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.rounds < 3:
        parser.error("--rounds must be at least 3 (the median of >= 3 rounds is reported)")
    figures = run(args.backend, args.messages, args.rows, args.files, args.rounds)
    report(args.backend, args, figures)
    for key in ("mllp", "hl7_bare", "csv", "csv_bare", "hl7_ratio", "csv_ratio"):
        assert math.isfinite(figures[key]) and figures[key] > 0, f"{key} = {figures[key]}"
    return figures


if __name__ == "__main__":
    main()
