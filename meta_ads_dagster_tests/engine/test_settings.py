"""settings.py: the seeds' defaults, environment overrides, and SettingsError naming the variable."""

from __future__ import annotations

import json

import pytest

from meta_ads_dagster.settings import OTHER_VARIABLES, Settings, SettingsError, load_settings

DEFAULTS = {
    "meta_api_mode": "stub",
    "meta_auto_mode": "suggest",
    "meta_auto_enabled": True,
    "meta_cycle_enabled": True,
    "meta_cycle_interval_minutes": 30,
    "max_daily_change_pct": 0.20,
    "max_auto_change_pct": 0.10,
    "hard_stop_roas": 0.9,
    "hard_stop_confidence": 0.70,
    "min_spain_percentage": 0.35,
    "max_single_country_pct": 0.70,
    "creative_embargo_hours": 48,
    "min_impressions": 1000,
    "min_spend_usd": 100,
    "min_age_hours": 48,
    "max_daily_spend_usd": 10_000,
    "max_campaign_budget_usd": 5_000,
    "max_actions_per_tick": 50,
    "max_campaigns_per_tick": 100,
    "require_human_approval_creatives": True,
}


def test_defaults():
    settings = load_settings()
    assert {name: getattr(settings, name) for name in DEFAULTS} == DEFAULTS
    assert settings.is_auto is False
    assert settings.budget_change_limit == 0.20
    assert settings.cycle_cron == "*/30 * * * *"
    assert settings.account_ids == []


def test_environment_overrides_defaults(monkeypatch):
    monkeypatch.setenv("META_AUTO_MODE", "auto")
    monkeypatch.setenv("MAX_AUTO_CHANGE_PCT", "0.05")
    monkeypatch.setenv("REQUIRE_HUMAN_APPROVAL_CREATIVES", "false")
    monkeypatch.setenv("META_AD_ACCOUNT_IDS", "act_1001, 2002 ,act_2002")
    monkeypatch.setenv("META_CYCLE_INTERVAL_MINUTES", "60")
    settings = load_settings()
    assert settings.is_auto and settings.budget_change_limit == 0.05
    assert settings.require_human_approval_creatives is False
    assert settings.account_ids == ["act_1001", "act_2002"]  # Graph form, each once
    assert settings.cycle_cron == "0 * * * *"


def test_keyword_overrides_win_over_environment(monkeypatch):
    monkeypatch.setenv("META_AUTO_MODE", "auto")
    assert load_settings(meta_auto_mode="suggest").is_auto is False


@pytest.mark.parametrize("variable, value", [
    ("MAX_AUTO_CHANGE_PCT", "2"),
    ("MAX_DAILY_CHANGE_PCT", "0"),
    ("META_AUTO_MODE", "yolo"),
    ("META_API_MODE", "production"),
    ("META_CYCLE_INTERVAL_MINUTES", "7"),
    ("META_CYCLE_INTERVAL_MINUTES", "90"),
    ("HARD_STOP_CONFIDENCE", "1.5"),
    ("MAX_CAMPAIGNS_PER_TICK", "0"),
    ("MAX_ACTIONS_PER_TICK", "-1"),
    ("MIN_IMPRESSIONS", "many"),
    ("META_AD_ACCOUNT_IDS", "act_1001,acme"),
    ("META_AD_ACCOUNT_IDS", "act_1001,act_１００２"),  # full-width digits are not digits (issue 10)
])
def test_invalid_value_names_the_variable(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert variable in str(caught.value)
    assert f"(got {value!r})" in str(caught.value)


def test_an_invalid_value_is_quoted_cut_short(monkeypatch):
    monkeypatch.setenv("MIN_IMPRESSIONS", "many" * 10_000)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "MIN_IMPRESSIONS" in str(caught.value) and "(got 'manymany" in str(caught.value)
    assert len(str(caught.value)) < 300


def test_auto_limit_may_not_exceed_the_suggest_limit(monkeypatch):
    monkeypatch.setenv("MAX_AUTO_CHANGE_PCT", "0.30")  # MAX_DAILY_CHANGE_PCT stays 0.20
    with pytest.raises(SettingsError, match="MAX_AUTO_CHANGE_PCT must not exceed MAX_DAILY_CHANGE_PCT"):
        load_settings()
    monkeypatch.setenv("MAX_DAILY_CHANGE_PCT", "0.30")
    assert load_settings().max_auto_change_pct == 0.30


def test_settings_error_is_a_value_error():
    assert issubclass(SettingsError, ValueError)


@pytest.mark.parametrize("minutes, cron", [(5, "*/5 * * * *"), (15, "*/15 * * * *"), (60, "0 * * * *")])
def test_cycle_cron(minutes, cron):
    assert load_settings(meta_cycle_interval_minutes=minutes).cycle_cron == cron


def test_with_mode_keeps_everything_else():
    base = load_settings(max_daily_change_pct=0.3, max_auto_change_pct=0.15)
    auto = base.with_mode("auto")
    assert auto.is_auto and auto.budget_change_limit == 0.15
    assert auto.model_dump() == base.model_dump() | {"meta_auto_mode": "auto"}
    with pytest.raises(SettingsError, match="META_AUTO_MODE"):
        base.with_mode("yolo")


def test_settings_are_frozen():
    settings = load_settings()
    with pytest.raises(Exception):
        settings.max_daily_spend_usd = 1.0  # type: ignore[misc]
    assert isinstance(settings, Settings)


# --- which accounts the cycle runs for (one partition each) ----------------------------------------
def _snapshot_file(path, account_id):
    path.write_text(json.dumps({"account": {"id": account_id}}))
    return path


def test_cycle_accounts_default_to_the_demo_account_in_stub_mode():
    assert load_settings().cycle_accounts() == ["act_1001"]
    assert load_settings(meta_ad_account_ids="5, act_7").cycle_accounts() == ["act_5", "act_7"]


def test_live_mode_needs_account_ids():
    with pytest.raises(SettingsError, match="META_AD_ACCOUNT_IDS"):
        load_settings(meta_api_mode="live").cycle_accounts()
    assert load_settings(meta_api_mode="live", meta_ad_account_ids="act_9").cycle_accounts() == ["act_9"]


def test_a_snapshot_file_is_its_own_account(tmp_path):
    path = str(_snapshot_file(tmp_path / "any_name.json", "act_42"))
    assert load_settings(meta_stub_snapshot=path).cycle_accounts() == ["act_42"]
    assert load_settings(meta_stub_snapshot=path, meta_ad_account_ids="42").cycle_accounts() == ["act_42"]
    with pytest.raises(SettingsError, match="META_STUB_SNAPSHOT.*holds account act_42.*act_43"):
        load_settings(meta_stub_snapshot=path, meta_ad_account_ids="act_42,act_43").cycle_accounts()


@pytest.mark.parametrize("content, problem", [
    (None, "cannot read"),
    # The snapshot loader's and parser's own messages, as `meta-ads plan` gives them (issue 10).
    (b"not json", r"snapshot rejected: not valid JSON at line 1 column 1: Expecting value"),
    (b'{"account": {"id": "act_1\xff"}}', r"snapshot rejected: not UTF-8 text: byte 0xff at line 1 column 26"),
    (b"[" * 100_000, r"snapshot rejected: not valid JSON: nested too deep to read"),
    (b'{"campaigns": []}', r"snapshot rejected: account.id: Field required"),
    (b'{"account": {"id": "shop-1"}}', r"account.id: must be an ad account id \(act_<digits>\) \(got 'shop-1'\)"),
    (b'{"account": {"id": "42"}}', r"account.id: must be an ad account id"),  # the format's form is act_<digits>
    ('{"account": {"id": "act_１２"}}'.encode(), r"account.id: must be an ad account id"),  # full-width digits
])
def test_a_bad_snapshot_file_names_meta_stub_snapshot(tmp_path, content, problem):
    path = tmp_path / "snapshot.json"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(SettingsError, match=f"META_STUB_SNAPSHOT.*{problem}") as error:
        load_settings(meta_stub_snapshot=str(path)).cycle_accounts()
    assert "\n" not in str(error.value)


def test_a_snapshot_directory_serves_one_account_per_file(tmp_path):
    for account in ("act_7", "act_12"):
        _snapshot_file(tmp_path / f"{account}.json", account)
    (tmp_path / "notes.json").write_text("{}")  # not an account file: ignored
    assert load_settings(meta_stub_snapshot=str(tmp_path)).cycle_accounts() == ["act_12", "act_7"]
    assert load_settings(meta_stub_snapshot=str(tmp_path), meta_ad_account_ids="7").cycle_accounts() == ["act_7"]
    with pytest.raises(SettingsError, match="META_STUB_SNAPSHOT.*no snapshot for act_8"):
        load_settings(meta_stub_snapshot=str(tmp_path), meta_ad_account_ids="7,8").cycle_accounts()
    (tmp_path / "empty").mkdir()
    with pytest.raises(SettingsError, match="META_STUB_SNAPSHOT.*any account"):
        load_settings(meta_stub_snapshot=str(tmp_path / "empty")).cycle_accounts()


@pytest.mark.parametrize(("minutes", "seconds"), [(30, 1500), (15, 750), (60, 3000), (1, 50)])
def test_a_cycle_may_run_five_sixths_of_its_interval(minutes, seconds):
    assert load_settings(meta_cycle_interval_minutes=minutes).cycle_max_runtime.total_seconds() == seconds


# --- issue 9 #16: no setting can switch a guard rail off -------------------------------------------
@pytest.mark.parametrize("variable", [
    "MAX_DAILY_SPEND_USD", "HARD_STOP_ROAS", "MAX_CAMPAIGN_BUDGET_USD", "APPROVAL_MIN_BUDGET_CHANGE_USD",
    "MIN_AGE_HOURS", "MIN_SPEND_USD", "APPROVAL_TTL_HOURS", "CREATIVE_EMBARGO_HOURS", "MAX_DAILY_CHANGE_PCT",
])
@pytest.mark.parametrize("value", ["inf", "1e999", "nan", "-inf"])
def test_infinite_or_nan_settings_are_refused_naming_the_variable(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert variable in str(caught.value)


@pytest.mark.parametrize("variable, value, fragment", [
    ("MAX_ACTIONS_PER_TICK", str(10**23), "less than or equal to 1000000"),
    ("MAX_CAMPAIGNS_PER_TICK", "10000000", "less than or equal to 1000000"),
    ("MAX_DAILY_SPEND_USD", "1e12", "less than or equal to 1000000000"),
    ("MIN_AGE_HOURS", "100000", "less than or equal to 8760"),
    ("HARD_STOP_ROAS", "1.5", "less than 1.5"),   # must stay below the hold band, where cuts start
    ("HARD_STOP_ROAS", "2.79", "less than 1.5"),
    ("HARD_STOP_ROAS", "0", "greater than 0"),          # no ROAS is below 0: the hard stop would be off
    ("HARD_STOP_CONFIDENCE", "1", "less than 1"),       # no confidence reaches 1: the same
    ("AUDIT_RETENTION_DAYS", "99999", "less than or equal to 3650"),
])
def test_settings_outside_a_sane_range_are_refused(monkeypatch, variable, value, fragment):
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=fragment) as caught:
        load_settings()
    assert variable in str(caught.value)


# --- issue 9 #10: the seed's interval and kill switch; typos are reported ----------------------------
def test_meta_auto_enabled_is_read():
    assert load_settings().meta_auto_enabled is True
    assert load_settings(meta_auto_enabled=False).meta_auto_enabled is False


@pytest.mark.parametrize("seconds, minutes", [("1800", 30), ("900", 15), ("3600", 60), ("300", 5)])
def test_meta_auto_interval_seconds_sets_the_interval(monkeypatch, seconds, minutes):
    monkeypatch.setenv("META_AUTO_INTERVAL_SECONDS", seconds)
    settings = load_settings()
    assert settings.meta_cycle_interval_minutes == minutes
    assert settings.cycle_cron == ("0 * * * *" if minutes == 60 else f"*/{minutes} * * * *")


@pytest.mark.parametrize("seconds", ["1000", "90", "7200", "0", "-60", "half an hour"])
def test_a_bad_meta_auto_interval_seconds_is_refused(monkeypatch, seconds):
    monkeypatch.setenv("META_AUTO_INTERVAL_SECONDS", seconds)
    with pytest.raises(SettingsError, match="META_AUTO_INTERVAL_SECONDS"):
        load_settings()


def test_two_interval_variables_must_agree(monkeypatch):
    monkeypatch.setenv("META_AUTO_INTERVAL_SECONDS", "900")
    monkeypatch.setenv("META_CYCLE_INTERVAL_MINUTES", "30")
    with pytest.raises(SettingsError, match=r"META_AUTO_INTERVAL_SECONDS \(900\) and META_CYCLE_INTERVAL_MINUTES \(30\) disagree"):
        load_settings()
    monkeypatch.setenv("META_CYCLE_INTERVAL_MINUTES", "15")
    assert load_settings().meta_cycle_interval_minutes == 15


def test_an_unknown_variable_that_looks_like_ours_is_reported(monkeypatch, caplog):
    monkeypatch.setattr("meta_ads_dagster.settings._warned", set())
    for name in ("MAX_DAYLY_SPEND_USD", "META_AUTO_MODEE", "HARD_STOP_ROA", "MIN_IMPRESSION"):
        monkeypatch.setenv(name, "1")
    monkeypatch.setenv("META_ACCESS_TOKEN", "secret")  # ours, read through EnvVar: never reported
    monkeypatch.setenv("MAXIMUM_SOMETHING", "1")  # not our prefix
    with caplog.at_level("WARNING", logger="meta_ads_dagster.settings"):
        settings = load_settings()
        load_settings()  # once per process, not on every load
    warned = [r.getMessage() for r in caplog.records]
    assert warned == [
        f"warning: unknown setting {name} ignored (not one of meta_ads_dagster's variables; a typo?)"
        for name in ("HARD_STOP_ROA", "MAX_DAYLY_SPEND_USD", "META_AUTO_MODEE", "MIN_IMPRESSION")
    ]
    assert settings.max_daily_spend_usd == 10_000  # the typo left the rail at its default: hence the warning


def test_the_readme_settings_table_shows_the_code_defaults():
    """README's settings table says what the code does: every variable it lists is a setting
    (or one of the few read elsewhere), and every literal default in it is the field's default."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    rows = re.findall(r"^\| `([A-Z_]+)` \| (.+?) \|", readme, flags=re.M)
    fields = Settings.model_fields
    listed = {name for name, _ in rows}
    assert {name.upper() for name in fields} <= listed  # every setting is documented
    for name, default in rows:
        field = fields.get(name.lower())
        assert field is not None or name in OTHER_VARIABLES, f"README lists {name}, which is not a setting"
        literal = re.fullmatch(r"`(.+)`", default.strip())
        if field is None or literal is None or field.default is None:
            continue  # "(unset)", "(demo act_1001)", a default derived at run time: described, not a literal
        value = field.default
        expected = str(value).lower() if isinstance(value, bool) else str(value)
        assert literal.group(1) in (expected, f"{value:.2f}" if isinstance(value, float) else expected), (name, default, value)
