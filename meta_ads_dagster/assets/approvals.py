"""After the cycle: what waits for a person, as an asset whose materializations the UI lists."""

import pandas as pd
from dagster import AssetExecutionContext, MaterializeResult, asset

from ..resources import LedgerResource
from ..store import approvals
from ..ui_metadata import ROW_COUNT, pending_table

WAITING = ("pending", "approved")  # for a person's decision; approved and not yet carried out


@asset(group_name="cycle", deps=["optimization_cycle"], kinds={"sql"})
def pending_approvals(context: AssetExecutionContext, ledger: LedgerResource) -> MaterializeResult:
    """The account's (the partition's) approval queue after its latest cycle: each action that
    waits for `meta-ads approve ID --by NAME` (or the `review_actions` job), and each approved one
    that the next cycle will re-validate and carry out, with before → after, reasons and when it
    expires. Materialized by every cycle run after ``optimization_cycle``; materialize it alone
    to refresh the list after a review. It stores nothing: the ledger is the queue."""
    store = ledger.open()
    rows = pd.concat([approvals.queue(store, status, context.partition_key) for status in WAITING], ignore_index=True)
    counts = rows["status"].value_counts()
    return MaterializeResult(
        metadata={
            "approvals": pending_table(rows),
            ROW_COUNT: len(rows),
            **{status: int(counts.get(status, 0)) for status in WAITING},
        }
    )
