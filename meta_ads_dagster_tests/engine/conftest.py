"""Engine tests run on the code's defaults, whatever the developer's shell exports."""

import pytest

from meta_ads_dagster.settings import Settings


@pytest.fixture(autouse=True)
def _clean_settings_environment(monkeypatch):
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
        monkeypatch.delenv(name, raising=False)
