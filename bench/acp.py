"""ACP benchmark (issue 7): $acp-summary latency as a ratio to a plain GET of one stored resource, same run.

    python -m bench.acp [--backend sqlite|postgresql|both] [--patients 1000] [--rounds 5] [--seconds 3]

The hub runs as a real uvicorn process (one worker) on a database holding `--patients` patients, each with a
realistic PZP set (7 treatment directives, some superseded, goal, 5 wish observations, the ACP conversation with
its encounter and communication, 2 contact persons, for some an ICD or a signed wilsverklaring as
DocumentReference + Binary), ~23 resources per patient. A HAP doctor (X-Purpose-Of-Use: TREAT) asks wrk, with
`--connections` clients, for random patients' `Patient/{id}/$acp-summary` and, interleaved round by round, for
random `Patient/{id}` (the plain GET; both are audited). Prints p50 and p99 of each and the ratios (median of the
rounds); target: p50 ratio <= 3.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from typing import Any

from adapters.identifiers import is_valid_bsn
from bench.harness import _percentile, free_port, median, need_wrk, start, uvicorn_argv
from hub.config import Settings
from hub.security.context import AccessContext
from hub.security.tokens import issue_token

PG_URL = os.environ.get("HUB_TEST_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
SNOMED = "http://snomed.info/sct"
AGB = "http://fhir.nl/fhir/NamingSystem/agb-z"
CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
HAP_ORG = f"{AGB}|01099001"
TREATMENTS = ("89666000", "305351004", "40617009", "32485007", "281789004", "116762002")
GP_PRACTICES = 20


# ------------------------------------------------------------------------------------------------ the data set
def bsn(n: int) -> str:
    """A 9-digit BSN in the 99999xxxx test range that passes the 11-proof (the last digit is the check)."""
    base = f"9999{n:04d}" if n < 10_000 else f"9991{n % 10_000:04d}"
    return next((base + str(d) for d in range(10) if is_valid_bsn(base + str(d))), None) or bsn(n + 10_000)


def directory() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for k in range(GP_PRACTICES):
        out.append({"resourceType": "Organization", "id": f"gp-{k}", "name": f"Huisartsenpraktijk {k}",
                    "identifier": [{"system": AGB, "value": f"0100{k:04d}"}], "active": True})
        for j in range(2):
            pid = f"gp-{k}-{j}"
            out.append({"resourceType": "Practitioner", "id": pid, "name": [{"text": f"Dr. Huisarts {k}.{j}",
                                                                                "family": f"Huisarts {k}.{j}"}],
                        "identifier": [{"system": AGB, "value": f"01{k:03d}{j:03d}"}]})
            out.append({"resourceType": "PractitionerRole", "id": pid,
                        "practitioner": {"reference": f"Practitioner/{pid}"},
                        "organization": {"reference": f"Organization/gp-{k}"}})
    return out


def patient_set(n: int, rng: random.Random) -> list[dict[str, Any]]:
    """One patient's PZP record as the IG's systems send it (see the module docstring)."""
    pid, gp = f"p{n:05d}", n % GP_PRACTICES
    role = {"reference": f"PractitionerRole/gp-{gp}-{n % 2}", "type": "PractitionerRole"}
    me = {"reference": f"Patient/{pid}"}
    day = f"20{rng.randint(20, 25)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    enc, proc = f"{pid}-enc", f"{pid}-acp"
    rows: list[dict[str, Any]] = [
        {"resourceType": "Patient", "id": pid, "identifier": [{"system": "http://fhir.nl/fhir/NamingSystem/bsn",
                                                               "value": bsn(n)}],
         "name": [{"use": "official", "text": f"Patiënt {n}", "family": f"Achternaam{n}", "given": ["Jan"]}],
         "gender": rng.choice(["male", "female"]), "birthDate": f"19{rng.randint(25, 55)}-0{rng.randint(1, 9)}-15",
         "telecom": [{"system": "phone", "value": f"0592{n:06d}"}],
         "generalPractitioner": [{"reference": f"Organization/gp-{gp}"}]},
        _contact(pid, "legal", "24", "Wettelijk vertegenwoordiger", n),
        _contact(pid, "first", "01", "Eerste relatie/contactpersoon", n),
        {"resourceType": "Procedure", "id": proc, "status": "completed", "subject": me,
         "code": {"coding": [{"system": SNOMED, "code": "713603004"}]}, "performedDateTime": day,
         "encounter": {"reference": f"Encounter/{enc}"}, "performer": [{"actor": role}]},
        {"resourceType": "Encounter", "id": enc, "status": "finished", "subject": me,
         "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
         "reasonReference": [{"reference": f"Procedure/{proc}"}], "period": {"start": day, "end": day}},
        {"resourceType": "Communication", "id": f"{pid}-inform", "status": "completed", "subject": me, "sent": day,
         "topic": {"coding": [{"system": SNOMED, "code": "223449006"}]},
         "reasonCode": [{"coding": [{"system": SNOMED, "code": "713603004"}]}]},
        {"resourceType": "Goal", "id": f"{pid}-goal", "lifecycleStatus": "active", "subject": me, "statusDate": day,
         "description": {"coding": [{"system": SNOMED, "code": rng.choice(["385987000", "1351964001", "713148004"])}]}},
        *_wishes(pid, me, day, rng),
    ]
    for code in (*TREATMENTS, "400231000146108"):
        rows.append(_directive(f"{pid}-td-{code}", me, role, code, day, rng))
        if rng.random() < 0.15:  # an older agreement on the same treatment, now superseded
            rows.append(_directive(f"{pid}-td-{code}-old", me, role, code, "2019-05-01", rng))
    if rng.random() < 0.15:
        rows += [{"resourceType": "Device", "id": f"{pid}-icd",
                  "type": {"coding": [{"system": SNOMED, "code": "72506001"}]}},
                 {"resourceType": "DeviceUseStatement", "id": f"{pid}-icd", "status": "active", "subject": me,
                  "device": {"reference": f"Device/{pid}-icd"}, "timingDateTime": "2021"}]
    if rng.random() < 0.3:
        rows += [{"resourceType": "Binary", "id": f"{pid}-wv", "contentType": "application/pdf",
                  "data": "JVBERi0xLjcK" + "QUFB" * 5000},
                 {"resourceType": "DocumentReference", "id": f"{pid}-wv", "status": "current", "subject": me,
                  "type": {"coding": [{"system": "http://loinc.org", "code": "42348-3"}]}, "date": f"{day}T10:00:00Z",
                  "description": "Schriftelijke wilsverklaring",
                  "content": [{"attachment": {"contentType": "application/pdf", "url": f"Binary/{pid}-wv"}}]}]
    return rows


def _contact(pid: str, suffix: str, code: str, display: str, n: int) -> dict[str, Any]:
    return {"resourceType": "RelatedPerson", "id": f"{pid}-{suffix}", "patient": {"reference": f"Patient/{pid}"},
            "relationship": [{"coding": [{"system": "urn:oid:2.16.840.1.113883.2.4.3.11.22.472", "code": code,
                                          "display": display}]}],
            "name": [{"text": f"Contact {suffix} {n}"}], "telecom": [{"system": "phone", "value": f"06{n:08d}"}]}


def _directive(cid: str, me: dict[str, str], role: dict[str, str], code: str, day: str,
               rng: random.Random) -> dict[str, Any]:
    provision: dict[str, Any] = {"actor": [{"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                                                            "v3-RoleCode", "code": "CONSENTER"}]},
                                            "reference": role}],
                                 "code": [{"coding": [{"system": SNOMED, "code": code}]}]}
    kind = rng.choice(["permit", "deny", "deny", None])
    if kind:
        provision["type"] = kind
    return {"resourceType": "Consent", "id": cid, "status": "active", "patient": me, "dateTime": day,
            "scope": {"coding": [{"system": CONSENT_SCOPE, "code": "treatment"}]},
            "category": [{"coding": [{"system": SNOMED, "code": "129125009"}]}],
            "policy": [{"uri": "https://wetten.overheid.nl/"}], "provision": provision}


def _wishes(pid: str, me: dict[str, str], day: str, rng: random.Random) -> list[dict[str, Any]]:
    def obs(suffix: str, code: str, **value: Any) -> dict[str, Any]:
        return {"resourceType": "Observation", "id": f"{pid}-{suffix}", "status": "final", "subject": me,
                "code": {"coding": [{"system": SNOMED, "code": code}]}, "effectiveDateTime": day, **value}

    concept = lambda code: {"valueCodeableConcept": {"coding": [{"system": SNOMED, "code": code}]}}  # noqa: E731
    return [obs("wishes", "153851000146100", valueString="Wil zo lang mogelijk thuis blijven wonen."),
            obs("place", "395091006", **concept(rng.choice(["264362003", "22232009", "108344006", "284546000"]))),
            obs("euthanasia", "340171000146104", **concept("340201000146103")),
            obs("donor", "570801000146104", **concept("373066001")),
            obs("other", "247751003", valueString="Hoort slecht; spreek rustig.")]


async def seed(settings: Settings, patients: int) -> None:
    """Store the data set through the repository (the write path minus per-resource model validation)."""
    from hub import domains
    from hub.fhir.validation import validate
    from hub.runtime import Runtime
    from hub.store.migrate import upgrade

    await asyncio.to_thread(upgrade, settings.database_url, "head", settings.database_schema)
    runtime = Runtime.build(settings)
    try:
        await domains.on_startup(runtime)
        ctx = AccessContext.system("bench.acp seed")
        rng = random.Random(7)
        for resource in [*directory(), *patient_set(0, random.Random(7))]:
            validate(resource, runtime.rules)  # the generator's output passes the PZP rules
        batches = [directory()] + [[r for n in range(start_at, min(patients, start_at + 50))
                                    for r in patient_set(n, rng)] for start_at in range(0, patients, 50)]
        for batch in batches:
            async with runtime.uow() as uow:
                for resource in batch:
                    await uow.resources.update(ctx, resource, validated=True)
    finally:
        await runtime.close()


# ------------------------------------------------------------------------------------------------ measuring
@dataclass
class Latency:
    p50_ms: float
    p99_ms: float
    rps: float
    non2xx: int


_LUA = """
math.randomseed(%d)
wrk.headers["Authorization"] = "Bearer %s"
wrk.headers["X-Purpose-Of-Use"] = "TREAT"
wrk.headers["Accept"] = "application/fhir+json"
request = function()
  local n = math.random(0, %d)
  return wrk.format("GET", string.format("%s", n))
end
"""


def wrk_random(base: str, path_format: str, patients: int, token: str, connections: int, seconds: float) -> Latency:
    """wrk over random patients: `path_format` has one %05d for the patient number."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_LUA % (random.randint(1, 10**6), token, patients - 1, path_format))
    try:
        out = subprocess.run([need_wrk(), "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency",
                              "-s", script.name, base], capture_output=True, text=True, timeout=seconds + 60).stdout
    finally:
        os.unlink(script.name)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return Latency(_percentile(out, "50%"), _percentile(out, "99%"), float(rps.group(1)) if rps else float("nan"),
                   int(non2xx.group(1)) if non2xx else 0)


def run_backend(backend: str, patients: int, rounds: int, seconds: float, connections: int) -> dict[str, float]:
    schema = f"bench_acp_{uuid.uuid4().hex[:8]}" if backend == "postgresql" else None
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {"HUB_BASE_URL": base, "HUB_MAX_IN_FLIGHT": "512"}
        if backend == "sqlite":
            env["HUB_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp}/bench-acp.db"
        else:
            asyncio.run(_sql(f'CREATE SCHEMA "{schema}"'))
            env.update(HUB_DATABASE_URL=PG_URL, HUB_DATABASE_SCHEMA=schema or "")
        settings = Settings(database_url=env["HUB_DATABASE_URL"], database_schema=schema, base_url=base)
        try:
            print(f"  [{backend}] loading {patients} patients ...", flush=True)
            asyncio.run(seed(settings, patients))
            return measure(backend, base, env, port, settings, patients, rounds, seconds, connections)
        finally:
            if schema:
                asyncio.run(_sql(f'DROP SCHEMA "{schema}" CASCADE'))


def measure(backend: str, base: str, env: dict[str, str], port: int, settings: Settings, patients: int, rounds: int,
            seconds: float, connections: int) -> dict[str, float]:
    import httpx

    hub, _ = start(uvicorn_argv("hub.asgi:app", port), env, "/fhir/metadata", port)
    token = issue_token(settings, role="hap-doctor", org=HAP_ORG, subject="bench-hap", ttl=3600)
    ratios: dict[str, list[float]] = {"p50": [], "p99": []}
    summary_path, get_path = "/fhir/Patient/p%05d/$acp-summary", "/fhir/Patient/p%05d"
    try:
        probe = httpx.get(f"{base}/fhir/Patient/p00000/$acp-summary", timeout=30,
                          headers={"Authorization": f"Bearer {token}", "X-Purpose-Of-Use": "TREAT"})
        probe.raise_for_status()
        print(f"  [{backend}] one summary: {len(probe.json()['entry'])} entries, {len(probe.content) // 1024} KiB",
              flush=True)
        for n in range(rounds):
            order = [(summary_path, "summary"), (get_path, "get")]
            results = {name: wrk_random(base, path, patients, token, connections, seconds)
                       for path, name in (order if n % 2 == 0 else order[::-1])}
            summary, plain = results["summary"], results["get"]
            assert summary.non2xx == 0 and plain.non2xx == 0, "the hub answered non-2xx"
            ratios["p50"].append(summary.p50_ms / plain.p50_ms)
            ratios["p99"].append(summary.p99_ms / plain.p99_ms)
            print(f"  [{backend}] round {n + 1}: $acp-summary p50 {summary.p50_ms:.2f} ms p99 {summary.p99_ms:.2f} ms"
                  f" ({summary.rps:.0f} rps) | GET Patient p50 {plain.p50_ms:.2f} ms p99 {plain.p99_ms:.2f} ms"
                  f" ({plain.rps:.0f} rps)", flush=True)
    finally:
        hub.stop()
    return {"p50": median(ratios["p50"]), "p99": median(ratios["p99"])}


async def _sql(statement: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(PG_URL)
    async with engine.begin() as conn:
        await conn.execute(text(statement))
    await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default="both", choices=["sqlite", "postgresql", "both"])
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=1)
    args = parser.parse_args()
    if args.rounds < 3:
        parser.error("--rounds must be at least 3 (the figure is the median of the rounds)")
    for backend in (["sqlite", "postgresql"] if args.backend == "both" else [args.backend]):
        result = run_backend(backend, args.patients, args.rounds, args.seconds, args.connections)
        print(f"\n== ACP benchmark on {backend}: {args.patients} patients, {args.connections} clients, "
              f"median of {args.rounds} interleaved rounds ==")
        print(f"  $acp-summary p50 / GET Patient p50  {result['p50']:6.2f}  (target <= 3)  "
              f"{'PASS' if result['p50'] <= 3 else 'FAIL'}")
        print(f"  $acp-summary p99 / GET Patient p99  {result['p99']:6.2f}")


if __name__ == "__main__":
    main()
