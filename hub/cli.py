"""The `hub` command: serve, migrate, demo-data, token, worker, ingest, audit-verify."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from hub.config import Settings, get_settings

DEMO_CLIENTS = [
    ("coordinator", "http://fhir.nl/fhir/NamingSystem/ura|90000001", "Coördinatiepunt Drenthe"),
    ("vvt-provider", "http://fhir.nl/fhir/NamingSystem/agb-z|73730001", "Zorggroep Noorderboog (demo)"),
    ("gp", "http://fhir.nl/fhir/NamingSystem/agb-z|01000001", "Huisartsenpraktijk De Brink (demo)"),
    ("hap-doctor", "http://fhir.nl/fhir/NamingSystem/agb-z|01099001", "Huisartsenpost Assen (demo)"),
    ("municipality", "https://zorgnet-hub.nl/fhir/NamingSystem/gemeentecode|0106", "Gemeente Assen (demo)"),
    ("admin", "http://fhir.nl/fhir/NamingSystem/ura|90000000", "Hub beheer"),
]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hub", description="Zorgnet Hub")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the API (embedded default: SQLite, in-process tasks)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--demo", action="store_true", help="load the demo region and print demo tokens")
    sub.add_parser("migrate", help="alembic upgrade head")
    sub.add_parser("demo-data", help="load the demo region (idempotent)")
    token = sub.add_parser("token", help="print a bearer token for a local client")
    token.add_argument("--role", required=True)
    token.add_argument("--org", required=True, help="SYSTEM|VALUE, e.g. http://fhir.nl/fhir/NamingSystem/ura|123")
    token.add_argument("--subject", default="cli")
    token.add_argument("--ttl", type=int, default=None)
    client = sub.add_parser("register-client", help="register a SMART backend client (JWKS file)")
    client.add_argument("--client-id", required=True)
    client.add_argument("--role", required=True)
    client.add_argument("--org", required=True)
    client.add_argument("--jwks", required=True, help="path to a JWKS JSON file with the client's public key(s)")
    sub.add_parser("worker", help="run a Celery worker (needs HUB_REDIS_URL)")
    sub.add_parser("audit-verify", help="seal and verify the audit hash chain")
    sim = sub.add_parser("simulate", help="a simulated day of referrals through the hub (figures + PNG)")
    sim.add_argument("--seed", type=int, default=6)
    sim.add_argument("--providers", type=int, default=20)
    sim.add_argument("--referrals", type=int, default=60)
    sim.add_argument("--plot", default="referrals-per-hour.png")
    ingest = sub.add_parser("ingest", help="store files through an adapter (bed-csv, hl7v2, iwmo, ...) as the sender")
    ingest.add_argument("--format", required=True, help="adapter format name (GET /ingest lists them)")
    ingest.add_argument("--sender", default=None, help="SYSTEM|VALUE of the sending organisation")
    ingest.add_argument("--role", default=None, help="role to act in (default: the sender's configured role)")
    ingest.add_argument("files", nargs="+", metavar="FILE")
    mllp = sub.add_parser("mllp", help="run the HL7 v2 MLLP listener (no HTTP)")
    mllp.add_argument("--host", default="127.0.0.1")
    mllp.add_argument("--port", type=int, default=2575)
    args = parser.parse_args(argv)
    settings = get_settings()

    if args.command == "serve":
        return _serve(settings, args.host, args.port, args.workers, args.demo)
    if args.command == "migrate":
        from hub.store.migrate import upgrade

        upgrade(settings.database_url, schema=settings.database_schema)
        print("database at head")
        return 0
    if args.command == "demo-data":
        asyncio.run(_demo(settings))
        return 0
    if args.command == "token":
        from hub.security.tokens import issue_token

        print(issue_token(settings, role=args.role, org=args.org, subject=args.subject, ttl=args.ttl))
        return 0
    if args.command == "register-client":
        asyncio.run(_register_client(settings, args.client_id, args.role, args.org, args.jwks))
        return 0
    if args.command == "worker":
        return _worker(settings)
    if args.command == "simulate":
        from hub.referrals.simulate import main as simulate

        return simulate(["--seed", str(args.seed), "--providers", str(args.providers),
                         "--referrals", str(args.referrals), "--plot", args.plot])
    if args.command == "audit-verify":
        return asyncio.run(_audit_verify(settings))
    if args.command == "ingest":
        from hub.ingest.cli import ingest_files

        return ingest_files(settings, args.format, args.files, sender=args.sender, role=args.role)
    if args.command == "mllp":
        from hub.ingest.cli import serve_mllp

        return serve_mllp(settings, args.host, args.port)
    return 2


def _serve(settings: Settings, host: str, port: int, workers: int, demo: bool) -> int:
    import uvicorn

    if demo:
        asyncio.run(_demo(settings))
        print_demo_tokens(settings)
    if workers > 1:
        uvicorn.run("hub.asgi:app", host=host, port=port, workers=workers, log_level="info")
    else:
        from hub.app import create_app

        uvicorn.run(create_app(settings), host=host, port=port, log_level="info")
    return 0


def print_demo_tokens(settings: Settings) -> None:
    from hub.security.tokens import issue_token

    print("\nDemo bearer tokens (valid 30 days; use as 'Authorization: Bearer <token>'):")
    for role, org, name in DEMO_CLIENTS:
        token = issue_token(settings, role=role, org=org, subject=f"demo-{role}", name=name, ttl=30 * 86400)
        print(f"  {role:13s} {token}")
    coordinator = issue_token(settings, role="coordinator", org=DEMO_CLIENTS[0][1], subject="demo-coordinator",
                              name=DEMO_CLIENTS[0][2], ttl=30 * 86400)
    print(f"\nFHIR base: {settings.base_url}/fhir")
    print(f"Coordination-point overview (opens signed in as the coordinator): "
          f"{settings.base_url}/overzicht?token={coordinator}\n")


async def _demo(settings: Settings) -> None:
    from hub.app import startup
    from hub.demo import load_demo_region
    from hub.runtime import Runtime

    runtime = Runtime.build(settings)
    try:
        if settings.is_sqlite:
            await startup(runtime)
        count = await load_demo_region(runtime)
        print(f"demo region loaded ({count} resources)")
    finally:
        await runtime.close()


async def _register_client(settings: Settings, client_id: str, role: str, org: str, jwks_path: str) -> None:
    from pathlib import Path

    from sqlalchemy import delete, insert

    from hub.store.engine import make_engine
    from hub.store.schema import clients

    engine = make_engine(settings)
    async with engine.begin() as conn:
        await conn.execute(delete(clients).where(clients.c.client_id == client_id))
        await conn.execute(
            insert(clients).values(
                client_id=client_id, org=org, role=role, jwks=Path(jwks_path).read_bytes(), name=client_id, active=True
            )
        )
    await engine.dispose()
    print(f"client {client_id} registered as {role} for {org}")


def _worker(settings: Settings) -> int:
    if not settings.redis_url:
        print("HUB_REDIS_URL is not set; the embedded mode runs tasks in-process", file=sys.stderr)
        return 2
    from hub.celery_app import app

    app.worker_main(["worker", "--loglevel=INFO", "--concurrency=2", "-B"])
    return 0


async def _audit_verify(settings: Settings) -> int:
    from hub.security.audit import seal, verify_chain
    from hub.store.engine import make_engine

    engine = make_engine(settings)
    async with engine.begin() as conn:
        sealed = await seal(conn)
    async with engine.connect() as conn:
        report = await verify_chain(conn)
    await engine.dispose()
    print(
        f"sealed {sealed} new entries; checked {report.checked}: {'OK' if report.ok else 'BROKEN'}"
        + (f" at seq {report.broken_at}: {report.reason}" if not report.ok else "")
    )
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
