"""Alembic migration environment of the ledger tables (run by ``store.ledger.upgrade_schema``)."""
