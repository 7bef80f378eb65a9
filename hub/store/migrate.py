"""Run alembic programmatically (`hub migrate`, app start in embedded mode, the test suite)."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import make_url

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def script_heads() -> set[str]:
    """The head revisions of hub/store/migrations, read from the revision files themselves: importing alembic
    costs ~0.5 s, a quarter of the embedded hub's start, and is only needed when there is something to migrate."""
    revisions: set[str] = set()
    named_as_down: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        revision = re.search(r"^revision\s*(?::[^=]+)?=\s*['\"]([^'\"]+)['\"]", text, re.M)
        down = re.search(r"^down_revision\s*(?::[^=]+)?=\s*(.+)$", text, re.M)
        if revision:
            revisions.add(revision.group(1))
        if down:
            named_as_down.update(re.findall(r"['\"]([^'\"]+)['\"]", down.group(1)))
    return revisions - named_as_down


def sqlite_at_head(database_url: str) -> bool:
    """True when an existing SQLite file is stamped with exactly the current heads (nothing to migrate)."""
    path = make_url(database_url).database
    if not path or path == ":memory:" or not Path(path).is_file():
        return False
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            stamped = {str(row[0]) for row in conn.execute("SELECT version_num FROM alembic_version")}
    except sqlite3.Error:
        return False
    return bool(stamped) and stamped == script_heads()


def alembic_config(database_url: str, schema: str | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    if schema:
        cfg.set_main_option("database_schema", schema)
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", database_url)
    cfg.set_main_option("file_template", "%%(year)d%%(month).2d%%(day).2d_%%(hour).2d%%(minute).2d_%%(slug)s")
    return cfg


def upgrade(database_url: str, revision: str = "head", schema: str | None = None) -> None:
    """alembic upgrade; runs in a helper thread when called from inside an event loop (env.py uses asyncio.run)."""
    from alembic import command

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
