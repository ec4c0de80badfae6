"""Every read query the web UI runs, by name: fixed SQL text, user values as ``{name:Type}`` parameters.

The store's catalogue of read queries includes :data:`UI_QUERIES`, so the UI
reads a ClickHouse server, a chDB it holds, or an embedded home's owner over its
query socket, always by name and never by SQL text.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from . import curves, run_table, run_view

__all__ = ["UI_QUERIES"]

UI_QUERIES: Mapping[str, str] = MappingProxyType({**curves.QUERIES, **run_table.QUERIES, **run_view.QUERIES})
"""Query name (``ui_...``) -> SQL with ``{db}`` and ``{name:Type}`` placeholders."""

if len(UI_QUERIES) != len(curves.QUERIES) + len(run_table.QUERIES) + len(run_view.QUERIES):
    raise RuntimeError("two UI read queries share a name")
