"""``meta-ads backtest``: what the engine would have done, day by day, over an account's own history.

Plain Python and pandas, no Dagster; the engine never imports this package. ``replay.py`` rebuilds
the account at each day's decision moment and runs the dry-run cycle on it; ``report.py`` turns
the replayed actions into rows and totals.
"""

from .replay import decision_moment, replay, replay_days
from .report import CAVEAT, REPORT_COLUMNS, backtest_document

__all__ = ["CAVEAT", "REPORT_COLUMNS", "backtest_document", "decision_moment", "replay", "replay_days"]
