"""Stores: where instances, steps and events live. `open_store` picks one from a URL or folder."""

from __future__ import annotations

from pathlib import Path

from ...errors import StoreError
from .sqlite import SQLiteStore

DB_NAME = "state.db"


def db_path(state_dir: str | Path) -> Path:
    return Path(state_dir) / DB_NAME


def open_store(state_dir: str | Path, url: str | None = None) -> SQLiteStore:
    """The store for a state folder, or for `url` when one is given (postgresql://... or sqlite:///path)."""
    if url:
        if url.startswith(("postgresql://", "postgres://")):
            from .postgres import PostgresStore

            return PostgresStore(url)
        if url.startswith("sqlite:///"):
            return SQLiteStore(
                url[len("sqlite:///") - 1 :] if url.startswith("sqlite:////") else url[len("sqlite:///") :]
            )
        scheme = url.split(":", 1)[0]
        raise StoreError(
            f"store URL {url!r} uses {scheme!r}, which this wf does not support",
            "use postgresql://user@host/db, a sqlite:///path URL, or leave WF_STORE unset for .wf/state.db",
        )
    return SQLiteStore(db_path(state_dir))
