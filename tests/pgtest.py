"""PostgreSQL for tests: one fresh schema per test, on the server named by WF_TEST_POSTGRES.

WF_TEST_POSTGRES unset: the PostgreSQL tests skip, saying how to run them (`pytest -ra` lists
the reason). Set but the server unreachable: they fail, naming the URL and the cause, so CI
can never pass by skipping them. `.ci/run` starts a server and sets the variable.
"""

from __future__ import annotations

import os
import time
import uuid
from urllib.parse import quote

import pytest

ENV = "WF_TEST_POSTGRES"
SKIP_REASON = (
    f"PostgreSQL tests need {ENV}=postgresql://user@host:port/db (a server you may scratch on); "
    f".ci/run starts one and sets it"
)


def base_url() -> str | None:
    return os.environ.get(ENV) or None


def require_base_url() -> str:
    url = base_url()
    if url is None and os.environ.get("CI"):
        pytest.fail(f"CI must run the PostgreSQL tests: {SKIP_REASON}", pytrace=False)
    if url is None:
        pytest.skip(SKIP_REASON)
    return url


def _admin(url: str):
    try:
        import psycopg
    except ImportError:
        pytest.fail(f"{ENV} is set but psycopg is not installed: pip install -e '.[test]'", pytrace=False)
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=5)
    except psycopg.Error as exc:
        pytest.fail(f"{ENV}={url} is set but the PostgreSQL server cannot be reached: {exc}".strip(), pytrace=False)


def with_schema(url: str, schema: str) -> str:
    """`url` with search_path set to `schema` (libpq's `options`)."""
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options={quote(f'-csearch_path={schema}')}"


class Schema:
    """A scratch schema; `url` points wf at it."""

    def __init__(self, base: str):
        self.base = base
        self.name = f"wf_test_{uuid.uuid4().hex[:12]}"
        with _admin(base) as conn:
            conn.execute(f'CREATE SCHEMA "{self.name}"')
        self.url = with_schema(base, self.name)

    def drop(self) -> None:
        """Drop the schema. Workers a test leaves to its fixtures may still be using it: when the
        drop's locks deadlock with theirs, PostgreSQL picks one side to fail; if that is the
        drop, it is tried again."""
        import psycopg

        for attempt in range(5):
            try:
                with _admin(self.base) as conn:
                    conn.execute(f'DROP SCHEMA IF EXISTS "{self.name}" CASCADE')
                return
            except psycopg.errors.DeadlockDetected:
                if attempt == 4:
                    raise
                time.sleep(0.2)


@pytest.fixture
def pg_url():
    """A store URL on a fresh schema of the test server (dropped afterwards)."""
    schema = Schema(require_base_url())
    yield schema.url
    schema.drop()
