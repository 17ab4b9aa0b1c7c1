"""The store: where instances, steps and events live. `open_store` picks the database from a URL
or a state folder; the domain operations (core.py) are the same on every database."""

from __future__ import annotations

from pathlib import Path

from ...errors import StoreError
from ..settings import Settings
from .core import SQLStore
from .urls import is_postgres

DB_NAME = "state.db"


def db_path(state_dir: str | Path) -> Path:
    return Path(state_dir) / DB_NAME


def open_store(state_dir: str | Path, url: str | None = None, settings: Settings | None = None) -> SQLStore:
    """The store for a state folder, or for `url` when one is given (postgresql://... or sqlite:///path)."""
    settings = settings or Settings()
    if is_postgres(url):
        from .postgres import PostgresDB  # psycopg loads only for a PostgreSQL store

        return SQLStore(PostgresDB(url, settings.pg_pool, settings.durability, settings.lease, settings.pg_pipeline))  # type: ignore[arg-type]
    from .sqlite import SQLiteDB

    if url:
        if not url.startswith("sqlite:///"):
            scheme = url.split(":", 1)[0]
            raise StoreError(
                f"store URL {url!r} uses {scheme!r}, which this wf does not support",
                "use postgresql://user@host/db, a sqlite:///path URL, or leave WF_STORE unset for .wf/state.db",
            )
        path = url[len("sqlite:///") :]  # sqlite:///rel/state.db, sqlite:////abs/state.db
        return SQLStore(SQLiteDB(path, settings.durability))
    return SQLStore(SQLiteDB(db_path(state_dir), settings.durability))
