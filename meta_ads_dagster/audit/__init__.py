"""Audits that check the system from the outside: nothing here imports ``meta_ads_dagster.engine``,
so a bug in the engine's arithmetic cannot hide itself from them."""
