"""The ledger: SQLite (WAL) holding every deployment, run, phase, fact, check, benchmark, event."""

from corral.ledger.db import Ledger, open_ledger

__all__ = ["Ledger", "open_ledger"]
