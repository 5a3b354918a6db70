"""Open a campaign store read-only and check that it is one, so that no report ever changes a store.

A store that a campaign is writing right now (or whose campaign was killed) has a non-empty `-wal` beside it
holding the latest transactions: it is read through SQLite's locking with mode=ro, which never writes the
database or the -wal (SQLite may rebuild its `-shm` index, a cache it owns). A store whose writer closed
cleanly has no `-wal`: it is opened `immutable=1`, which creates no side file at all, so the report leaves
the folder exactly as it was and works where the folder is read-only.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from urllib.parse import quote

from fuzzer.campaign.store import DB_NAME, SCHEMA_VERSION, SQLITE_MAGIC

REQUIRED_TABLES = ("campaign", "runs", "cases", "signatures", "findings")


class StoreError(ValueError):
    """Not a campaign store, or a corrupt one: the CLI reports it as one line, exit 2."""


def db_path(location: Path) -> Path:
    """The database of a campaign folder (or the database file itself, when given one)."""
    if not location.exists():
        raise StoreError(f"{location}: no such campaign folder")
    if location.is_dir():
        db = location / DB_NAME
        if not db.is_file():
            raise StoreError(f"{location}: not a campaign folder (no {DB_NAME})")
        return db
    return location


def _uri(db: Path, immutable: bool) -> str:
    path = quote(str(db.resolve()))
    return f"file:{path}?mode=ro" + ("&immutable=1" if immutable else "")


def _check_magic(db: Path) -> None:
    try:
        with db.open("rb") as f:
            head = f.read(len(SQLITE_MAGIC))
    except OSError as e:
        raise StoreError(f"{db}: cannot read ({e.strerror})") from None
    if head != SQLITE_MAGIC:
        raise StoreError(f"{db}: not a Parallax store (not an SQLite database)")


def open_store(location: Path, check_integrity: bool = True) -> tuple[sqlite3.Connection, Path]:
    """A read-only connection to the store in `location` (folder or db file) and the campaign folder.

    Raises StoreError for a missing folder, a file that is not SQLite, a schema version other than 1,
    missing tables, or a failed integrity check.
    """
    db = db_path(location)
    _check_magic(db)
    wal = db.with_name(db.name + "-wal")
    live = wal.exists() and wal.stat().st_size > 0
    try:
        conn = sqlite3.connect(_uri(db, immutable=not live), uri=True)
        conn.row_factory = sqlite3.Row
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.Error as e:
        if live:  # a WAL store in a folder we may not write to: read its last checkpoint instead
            return _open_immutable(db, check_integrity)
        raise StoreError(f"{db}: not a Parallax store ({e})") from None
    return _validated(conn, db, version, check_integrity), db.parent


def _open_immutable(db: Path, check_integrity: bool) -> tuple[sqlite3.Connection, Path]:
    try:
        conn = sqlite3.connect(_uri(db, immutable=True), uri=True)
        conn.row_factory = sqlite3.Row
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.Error as e:
        raise StoreError(f"{db}: not a Parallax store ({e})") from None
    return _validated(conn, db, version, check_integrity), db.parent


def _validated(conn: sqlite3.Connection, db: Path, version: int, check_integrity: bool) -> sqlite3.Connection:
    try:
        if version != SCHEMA_VERSION:
            raise StoreError(f"{db}: not a Parallax store (schema version {version}, expected {SCHEMA_VERSION})")
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        missing = [t for t in REQUIRED_TABLES if t not in names]
        if missing:
            raise StoreError(f"{db}: not a Parallax store (no table {', '.join(missing)})")
        if check_integrity:
            result = [r[0] for r in conn.execute("PRAGMA integrity_check")]
            if result != ["ok"]:
                first = "; ".join(" ".join(str(r).split()) for r in result[:3])[:200]
                raise StoreError(f"{db}: not a Parallax store (integrity check failed: {first})")
    except sqlite3.Error as e:
        conn.close()
        raise StoreError(f"{db}: not a Parallax store ({e})") from None
    except StoreError:
        conn.close()
        raise
    return conn


def table_names(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
