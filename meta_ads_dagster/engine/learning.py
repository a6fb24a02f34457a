"""Meta's learning phase: which running ad sets a budget change would disturb while they learn.

After a launch or a significant edit Meta "learns" an ad set (around 50 optimization events within
7 days); meanwhile it delivers less steadily and usually at a higher cost, and another significant
edit starts the learning over. Each ad set's ``learning_stage_info.status`` comes with the
structure reads (docs/snapshot-format.md). A budget change reaches the ad sets that budget pays
for: a campaign's (campaign budget) reaches every ad set of the campaign, an ad set's only itself.
Only running ad sets count: a paused one delivers nothing a budget could disturb.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

LEARNING = "LEARNING"


def learning_adsets(entities: pd.DataFrame) -> np.ndarray:
    """Per row of the entity table: the running ad sets in LEARNING that a budget change of the
    entity reaches (a campaign: its ad sets; an ad set: itself; an ad: its ad set), sorted ids."""
    learning = entities[
        entities["entity_type"].eq("adset") & entities["effective_active"] & entities["learning_status"].eq(LEARNING)
    ].sort_values("entity_id")
    reached = np.empty(len(entities), dtype=object)
    reached.fill(())
    if learning.empty:
        return reached
    by_campaign = {campaign: tuple(ids) for campaign, ids in learning.groupby("campaign_id")["entity_id"]}
    kind = entities["entity_type"].to_numpy(dtype=object)
    campaigns = np.flatnonzero(kind == "campaign")
    for row, campaign in zip(campaigns, entities["campaign_id"].to_numpy(dtype=object)[campaigns]):
        reached[row] = by_campaign.get(campaign, ())
    adset = entities["adset_id"].to_numpy(dtype=object)
    for row in np.flatnonzero((kind != "campaign") & pd.Series(adset).isin(learning["entity_id"]).to_numpy()):
        reached[row] = (adset[row],)
    return reached
