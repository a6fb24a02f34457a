"""Alembic revisions of the ledger tables. Each is a frozen snapshot: never import the live tables."""
