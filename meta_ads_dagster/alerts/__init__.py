"""Alerts: when a cycle fails, stalls, or does something a person should know about.

``conditions.py`` judges (plain functions), ``notifier.py`` delivers (log, webhook, email),
``sensors.py`` wires them to Dagster's run-status and schedule-aware sensors.
"""
