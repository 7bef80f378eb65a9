"""The embedded hub skips alembic at start when its SQLite file is already at the current heads; the heads it
reads from the revision files must be alembic's own."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from alembic.script import ScriptDirectory

from hub.store.migrate import alembic_config, script_heads, sqlite_at_head, upgrade


def test_heads_read_from_the_revision_files_are_alembics() -> None:
    alembic_heads = set(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads())
    assert alembic_heads and script_heads() == alembic_heads


def test_only_a_file_at_the_heads_counts_as_migrated(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}"
    assert not sqlite_at_head(url)  # no file yet
    upgrade(url, "0001")
    assert not sqlite_at_head(url)  # an older schema must still be migrated
    upgrade(url)
    assert sqlite_at_head(url)
    with sqlite3.connect(tmp_path / "hub.db") as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'ffff'")
    assert not sqlite_at_head(url)  # stamped with a revision this code does not know
    assert not sqlite_at_head(f"sqlite+aiosqlite:///{tmp_path / 'not-a-db.db'}")
