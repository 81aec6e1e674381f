from __future__ import annotations

import sqlite3
from pathlib import Path

from corral.ledger import open_ledger
from corral.ledger.db import load_migrations


def test_open_creates_wal_database_with_core_tables(tmp_path: Path) -> None:
    with open_ledger(tmp_path / "ledger.sqlite3") as ledger:
        mode = ledger.conn.execute("PRAGMA journal_mode").fetchone()[0]
        tables = {
            r[0] for r in ledger.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
    assert mode == "wal"
    assert {"deployments", "runs", "phases", "facts", "events"} <= tables


def test_migrations_apply_once(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    open_ledger(path).close()
    open_ledger(path).close()
    conn = sqlite3.connect(path)
    versions = [
        r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY version")
    ]
    conn.close()
    assert versions == [m.version for m in load_migrations()]


def test_failed_transaction_rolls_back(tmp_path: Path) -> None:
    with open_ledger(tmp_path / "l.sqlite3") as ledger:
        try:
            with ledger.transaction() as conn:
                conn.execute("INSERT INTO deployments (name, created_at) VALUES ('a', 0)")
                raise RuntimeError("boom")
        except RuntimeError:
            pass
        count = ledger.conn.execute("SELECT count(*) FROM deployments").fetchone()[0]
    assert count == 0


def test_statement_split_ignores_semicolons_in_comments_and_literals() -> None:
    from corral.ledger.db import _statements

    sql = (
        "-- a comment; with a semicolon\n"
        "CREATE TABLE t (a TEXT DEFAULT 'x;y');\n"
        "INSERT INTO t (a) VALUES ('1;2');\n"
        "-- trailing comment;\n"
    )
    assert _statements(sql) == [
        "-- a comment; with a semicolon\nCREATE TABLE t (a TEXT DEFAULT 'x;y');",
        "INSERT INTO t (a) VALUES ('1;2');",
    ]
