"""Open the SQLite ledger, in WAL mode, and bring its schema up to date.

Migrations are the files `migrations/NNNN_name.sql`, applied in order, each in its own
transaction, and recorded in `schema_migrations`; a migration never changes once landed.
WAL plus one transaction per write keeps the file consistent if a process is killed with
SIGKILL mid-run: SQLite rolls back the unfinished transaction on next open.

Every domain owns its tables and the small repository functions over them (for example
`corral.ledger.runs`); this module only opens and migrates.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from corral.errors import LedgerError

MIGRATIONS_PACKAGE = "corral.ledger.migrations"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations() -> list[Migration]:
    """The packaged migrations, sorted by their number."""
    found: list[Migration] = []
    for entry in resources.files(MIGRATIONS_PACKAGE).iterdir():
        if not entry.name.endswith(".sql"):
            continue
        number, _, rest = entry.name.partition("_")
        found.append(Migration(int(number), rest.removesuffix(".sql"), entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise LedgerError(f"two ledger migrations share a number: {versions}")
    return found


class Ledger:
    """A connection to the ledger. Use `transaction()` for every write."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path
        # `corral serve` writes from worker threads (one per blocking step) through this
        # one connection: a transaction must not interleave with another's BEGIN.
        self._lock = threading.RLock()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error): one atomic write."""
        with self._lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def migrate(conn: sqlite3.Connection, migrations: list[Migration]) -> list[int]:
    """Apply the migrations not yet recorded; returns the versions applied."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
    )
    done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
    applied: list[int] = []
    for mig in migrations:
        if mig.version in done:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(mig.sql):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (mig.version, mig.name, time.time()),
            )
        except sqlite3.Error as exc:
            conn.execute("ROLLBACK")
            raise LedgerError(f"ledger migration {mig.version}_{mig.name} failed: {exc}") from exc
        conn.execute("COMMIT")
        applied.append(mig.version)
    return applied


def _statements(sql: str) -> list[str]:
    """Split a migration into statements; SQLite itself says where one ends, so semicolons
    inside comments or string literals don't cut a statement."""
    statements: list[str] = []
    pending = ""
    for piece in sql.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if _has_code(pending):
                statements.append(pending.strip())
            pending = ""
    if _has_code(pending.rstrip(";")):
        statements.append(pending.rstrip(";").strip())
    return statements


def _has_code(text: str) -> bool:
    lines = (line.split("--", 1)[0].strip() for line in text.splitlines())
    return any(line and line != ";" for line in lines)


def open_ledger(path: Path) -> Ledger:
    """Open (creating if needed) and migrate the ledger at `path`."""
    try:
        conn = _connect(path)
    except sqlite3.Error as exc:
        raise LedgerError(
            f"cannot open the ledger at {path}: {exc}",
            hint="check the directory is writable, or set CORRAL_HOME",
        ) from exc
    migrate(conn, load_migrations())
    return Ledger(conn, path)
