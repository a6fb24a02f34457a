"""Policies compared on the simulated market (``meta-ads simulate``): the real engine, plain rules
and doing nothing, each over a fresh ``Market(campaigns, seed)``, one decision every 30 simulated
minutes; profit from the market's truth, breaches from the independent guard-rail checker.

meta/market.py (the market as a Meta client) → policies.py → run.py → report.py (table, JSON, chart).
Nothing of the engine, the cycle or the store imports this package.
"""
