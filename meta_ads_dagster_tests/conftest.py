"""Shared fixtures: settings isolated from the host environment, and a real PostgreSQL database.

PostgreSQL: tests that need it take the server URL from ``META_ADS_TEST_POSTGRES_URL`` (e.g.
``postgresql+psycopg2://postgres@127.0.0.1:5432/test``) and get a fresh, uniquely named database
that is dropped afterwards. Without the variable they skip with the reason, unless
``META_ADS_REQUIRE_POSTGRES=1`` (set by .ci/run), in which case they fail: CI must run them.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from meta_ads_dagster.settings import Settings

SETTINGS_VARIABLES = [name.upper() for name in Settings.model_fields]


@pytest.fixture(autouse=True)
def clean_settings_env(monkeypatch, tmp_path):
    """No test sees the host's META_* / guard-rail variables; DAGSTER_HOME is a fresh folder; the
    stub's demo is the static one."""
    for name in SETTINGS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    # The static demo's fixed campaigns are what the stub-mode tests assert on; the living demo
    # (the market, the default for people) has its own tests, which ask for it.
    monkeypatch.setenv("META_STUB_DEMO", "static")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    (tmp_path / "dagster_home").mkdir()
    (tmp_path / "dagster_home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")


def _postgres_server_url() -> str | None:
    url = os.environ.get("META_ADS_TEST_POSTGRES_URL")
    if url:
        return url
    if os.environ.get("META_ADS_REQUIRE_POSTGRES") == "1":
        pytest.fail("META_ADS_REQUIRE_POSTGRES=1 but META_ADS_TEST_POSTGRES_URL is not set")
    pytest.skip("PostgreSQL tests need META_ADS_TEST_POSTGRES_URL (see meta_ads_dagster_tests/conftest.py)")


@contextlib.contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """A fresh, uniquely named database on the test server (its URL), dropped on exit.

    Skips (or fails under META_ADS_REQUIRE_POSTGRES=1) when the server is not configured or
    unreachable. ``postgres_url`` wraps it per test; module-scoped fixtures (e.g. the deploy
    tests' Dagster daemon + webserver) use it directly.
    """
    server = sa.make_url(_postgres_server_url())
    name = f"meta_ads_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        if os.environ.get("META_ADS_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL at {server.render_as_string(hide_password=True)} is required but unreachable: {exc}")
        pytest.skip(f"PostgreSQL unreachable: {exc}")
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def postgres_url():
    """URL of a fresh PostgreSQL database on the test server; dropped after the test."""
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """The app tables' URL on each supported backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'meta_ads.sqlite'}"
    return request.getfixturevalue("postgres_url")
