"""The Markdown logbook of a deployment, from the ledger only."""

from corral.report.logbook import collect
from corral.report.markdown import render

__all__ = ["collect", "render"]
