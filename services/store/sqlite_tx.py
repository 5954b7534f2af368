"""The two SQLite helpers SqliteStore and its mixins share: the shared SQL's %s placeholders as
sqlite3's ?, and one write transaction. No connection of its own."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def qmark(sql: str) -> str:
    """The SQL shared with PostgreSQL (%s placeholders) in sqlite3's qmark style."""
    return sql.replace("%s", "?")


def in_tx(db: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
    """Run `work` in one write transaction, rolled back if it raises. BEGIN IMMEDIATE takes the
    write lock first, so it is also the row lock."""
    db.execute("BEGIN IMMEDIATE")
    try:
        out = work(db)
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return out
