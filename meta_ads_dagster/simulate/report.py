"""The comparison as people and scripts read it: a table (policies as rows), a JSON document and a
PNG chart of each policy's cumulative profit per simulated day."""

from __future__ import annotations

import json
from pathlib import Path

from .run import PolicyRun

TABLE_COLUMNS = (
    "policy", "spend", "revenue", "profit", "roas", "vs_do_nothing", "vs_plain_rules", "actions", "learning_resets", "breaches",
)
BASELINES = {"vs_do_nothing": "do_nothing", "vs_plain_rules": "plain_rules"}
CHART_FILE, TABLE_FILE = "cumulative_profit.png", "comparison.json"


def profit_gain_pct(profit: float, baseline: float) -> float | None:
    """How much more ``profit`` is than ``baseline``, in % of the baseline's size (None at 0)."""
    return round(100 * (profit - baseline) / abs(baseline), 1) if baseline else None


def comparison(runs: list[PolicyRun]) -> list[dict]:
    """One row per run, with its profit against each baseline that ran beside it."""
    profit = {run.policy: run.profit for run in runs}
    return [
        {
            **{key: value for key, value in run.as_dict().items() if key != "guard_rails"},
            **{column: None if baseline not in profit or baseline == run.policy else profit_gain_pct(run.profit, profit[baseline])
               for column, baseline in BASELINES.items()},
        }
        for run in runs
    ]


def table_rows(rows: list[dict]) -> list[dict]:
    """The comparison's cells as a person reads them (money in whole units, gains with a sign)."""
    return [
        {
            "policy": row["policy"],
            **{key: f"{row[key]:,.0f}" for key in ("spend", "revenue", "profit")},
            "roas": f"{row['roas']:.2f}",
            **{key: "" if row[key] is None else f"{row[key]:+.1f} %" for key in BASELINES},
            "actions": ", ".join(f"{kind} {count}" for kind, count in row["actions"].items()) or "none",
            "learning_resets": row["learning_resets"],
            "breaches": row["breaches"],
        }
        for row in rows
    ]


def write_table(rows: list[dict], setup: dict, out: Path) -> Path:
    """The comparison as JSON: the market and guard rails it ran on (``setup``), one entry per policy."""
    path = out / TABLE_FILE
    path.write_text(json.dumps({"setup": setup, "policies": rows}, indent=2) + "\n")
    return path


def write_chart(runs: list[PolicyRun], title: str, out: Path) -> Path:
    """Cumulative true profit per policy per simulated day, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display, the same output everywhere
    from matplotlib import pyplot
    from matplotlib.ticker import MaxNLocator, StrMethodFormatter

    figure, axes = pyplot.subplots(figsize=(9, 5))
    try:
        for run in runs:  # from day 0, before anything was delivered
            days = range(len(run.daily) + 1)
            axes.plot(days, [0.0] + [day["cumulative_profit"] for day in run.daily], marker="o", markersize=3, label=run.policy)
        axes.axhline(0, color="grey", linewidth=0.8)
        axes.set(title=title, xlabel="simulated day", ylabel="cumulative profit (revenue − spend, USD)")
        axes.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.legend()
        axes.grid(alpha=0.3)
        path = out / CHART_FILE
        # No timestamp in the file: the same run writes the same bytes.
        figure.savefig(path, dpi=100, metadata={"Software": None})
    finally:
        pyplot.close(figure)
    return path
