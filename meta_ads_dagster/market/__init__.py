"""A simulated Meta ad account for measuring decisions (issue 12): pure Python + numpy, no Dagster.

    from meta_ads_dagster.market import Market, MarketParams, MarketRefused
    m = Market(campaigns=200, seed=7)
    m.advance(30); doc = m.snapshot(); m.update_budget("adset", "6000000012", 12000)

The model, its parameters and their sources: docs/market.md and :class:`MarketParams`.
"""

from .model import Market, MarketRefused
from .params import MarketParams

__all__ = ["Market", "MarketParams", "MarketRefused"]
