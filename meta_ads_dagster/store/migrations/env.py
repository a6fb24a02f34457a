"""Alembic environment of the ledger tables.

There is no alembic.ini: ``meta_ads_dagster.store.ledger.alembic_config()`` builds the Config in
code and passes an open connection as ``config.attributes["connection"]``; the migrations then run
inside that connection's transaction (the caller commits). Without a connection the URL is taken
from the ``sqlalchemy.url`` option (``config.set_main_option``), online or, with ``--sql``, offline.

``render_as_batch`` makes autogenerate write ``op.batch_alter_table`` blocks, so new revisions also
run on SQLite.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from meta_ads_dagster.store.ledger import VERSION_TABLE, metadata as target_metadata

config = context.config

# version_table: not Alembic's default, which Dagster's own PostgreSQL storage uses.
OPTIONS = {"target_metadata": target_metadata, "render_as_batch": True, "compare_type": True, "version_table": VERSION_TABLE}


def run_migrations_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True, **OPTIONS)
    with context.begin_transaction():
        context.run_migrations()


def _run(connection: sa.Connection) -> None:
    context.configure(connection=connection, **OPTIONS)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = sa.create_engine(config.get_main_option("sqlalchemy.url"), poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
