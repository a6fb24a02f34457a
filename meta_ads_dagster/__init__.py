"""Meta Ads accounts on autopilot, as a Dagster code location.

``defs`` (``definitions.defs``) is here too, so ``dagster ... -m meta_ads_dagster`` finds the code
location as people type it. It is built on first use, not on import: ``meta-ads plan`` and the
engine import this package, and must neither pay for Dagster nor read the settings the
definitions are built from.
"""


def __getattr__(name: str):
    if name == "defs":
        from .definitions import defs

        return defs
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    # Dagster looks for a module's Definitions among the names dir() lists.
    return sorted({*globals(), "defs"})
