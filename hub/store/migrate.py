"""Run alembic programmatically (`hub migrate`, app start in embedded mode, the test suite)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(database_url: str, schema: str | None = None) -> Config:
    cfg = Config()
    if schema:
        cfg.set_main_option("database_schema", schema)
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", database_url)
    cfg.set_main_option("file_template", "%%(year)d%%(month).2d%%(day).2d_%%(hour).2d%%(minute).2d_%%(slug)s")
    return cfg


def upgrade(database_url: str, revision: str = "head", schema: str | None = None) -> None:
    """alembic upgrade; runs in a helper thread when called from inside an event loop (env.py uses asyncio.run)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        command.upgrade(alembic_config(database_url, schema), revision)
        return
    errors: list[BaseException] = []

    def _target() -> None:
        try:
            command.upgrade(alembic_config(database_url, schema), revision)
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)

    thread = threading.Thread(target=_target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
