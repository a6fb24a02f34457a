"""META_ACCOUNTS_FILE: per-account guard rails, validated on load, applied to that account only."""

import time

import pytest
from dagster import DagsterInstance

from meta_ads_dagster.definitions import build_definitions
from meta_ads_dagster.engine.cycle import plan_document
from meta_ads_dagster.engine.snapshot import parse_snapshot
from meta_ads_dagster.jobs import CYCLE_JOB_NAME
from meta_ads_dagster.meta.demo import demo_snapshot
from meta_ads_dagster.settings import SettingsError, load_settings

BLACK_FRIDAY = "Black Friday - ES"  # the demo's $500/day campaign with ROAS 3.1: a raise clamped to the limit


def raise_of_black_friday(account: str, settings) -> float:
    document = demo_snapshot(account)
    campaign_id = next(c["id"] for c in document["campaigns"] if c["name"] == BLACK_FRIDAY)
    actions = {a["entity_id"]: a for a in plan_document(parse_snapshot(document), settings)["actions"]}
    return actions[campaign_id]["new_budget_usd"]


def write(tmp_path, text: str) -> str:
    path = tmp_path / "accounts.yaml"
    path.write_text(text)
    return str(path)


def test_an_override_applies_to_its_account_only(tmp_path):
    settings = load_settings(meta_accounts_file=write(tmp_path, "act_1001:\n  MAX_DAILY_CHANGE_PCT: 0.10\n  MAX_AUTO_CHANGE_PCT: 0.05\n"))
    assert settings.for_account("act_1001").max_daily_change_pct == 0.10
    assert settings.for_account("act_1001").max_auto_change_pct == 0.05
    assert settings.for_account("act_2002").max_daily_change_pct == 0.20  # no override: the defaults
    assert settings.max_daily_change_pct == 0.20


def test_an_override_may_name_the_account_without_act(tmp_path):
    settings = load_settings(meta_accounts_file=write(tmp_path, "2002: {MAX_DAILY_SPEND_USD: 50}\n"))
    assert settings.for_account("act_2002").max_daily_spend_usd == 50


def test_an_override_for_an_account_that_is_not_configured_stops_the_program(tmp_path):
    """A typo (act_2020 for act_2002) would leave the intended account on the defaults."""
    settings = load_settings(meta_ad_account_ids="act_1001,act_2002", meta_accounts_file=write(tmp_path, "act_2020: {MAX_DAILY_SPEND_USD: 50}\n"))
    with pytest.raises(SettingsError, match=r"META_ACCOUNTS_FILE .*: act_2020 is not a configured account \(act_1001, act_2002\)"):
        settings.cycle_accounts()
    with pytest.raises(SettingsError, match="act_2020"):
        build_definitions(settings)


def test_plan_uses_the_accounts_limits(tmp_path):
    settings = load_settings(meta_accounts_file=write(tmp_path, "act_1001: {MAX_DAILY_CHANGE_PCT: 0.10, MAX_AUTO_CHANGE_PCT: 0.05}\n"))
    assert raise_of_black_friday("act_1001", settings) == 550.0
    assert raise_of_black_friday("act_2002", settings) == 600.0  # no override: the defaults


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("act_1001:\n  MAX_DAILY_CHANGE_PCT: 3\n", "act_1001.MAX_DAILY_CHANGE_PCT"),
        ("act_1001:\n  MAX_AUTO_CHANGE_PCT: 0.5\n", "MAX_AUTO_CHANGE_PCT must not exceed MAX_DAILY_CHANGE_PCT"),
        ("act_1001:\n  META_API_MODE: live\n", "act_1001: META_API_MODE cannot be set per account"),
        ("shop_1:\n  MAX_DAILY_SPEND_USD: 10\n", "shop_1: not an ad account id"),
        ("- act_1001\n", "must map ad account ids"),
        ("0\n", "must map ad account ids"),
        ("act_1001: [1, 2\n", "not valid YAML at line 2 column 1: expected ',' or ']', but got '<stream end>'"),
        # Issue 10: nothing merged silently, keys read as written, full-width digits are not digits.
        ("act_1001: {MAX_DAILY_SPEND_USD: 5}\nact_1001: {MAX_DAILY_SPEND_USD: 6}\n", "not valid YAML at line 2 column 1: duplicate key act_1001"),
        ("act_3001: {MAX_DAILY_SPEND_USD: 5}\n3001: {MAX_DAILY_SPEND_USD: 6}\n", "act_3001 and 3001 are the same account act_3001"),
        ("act_1001: {MAX_DAILY_SPEND_USD: 5, MAX_DAILY_SPEND_USD: 6}\n", "line 1 column 36: duplicate key MAX_DAILY_SPEND_USD"),
        ("act_1001: {MAX_DAILY_SPEND_USD: 5, max_daily_spend_usd: 6}\n", "act_1001: MAX_DAILY_SPEND_USD and max_daily_spend_usd are the same variable"),
        ("1_001: {MAX_DAILY_SPEND_USD: 5}\n", "1_001: not an ad account id"),  # YAML 1.1 would read 1001
        ("act_１００１: {MAX_DAILY_SPEND_USD: 5}\n", "act_１００１: not an ad account id"),
        ("? [act_1001]\n: {MAX_DAILY_SPEND_USD: 5}\n", "line 1 column 3: a key must be a plain value"),
        ("act_1001: {MAX_DAILY_SPEND_USD: 5}\x00\n", "not valid YAML: unacceptable character #x0000"),
        ("act_1001: {MAX_DAILY_SPEND_USD: 2026-13-45}\n", "not valid YAML: month must be in 1..12"),
        ("act_1001: " + "[" * 20_000 + "]" * 20_000 + "\n", "not valid YAML: nested too deep to read"),
        # Issue 9 #16: YAML's .inf cannot switch a rail off either.
        ("act_1001:\n  MAX_DAILY_SPEND_USD: .inf\n", "act_1001.MAX_DAILY_SPEND_USD: Input should be a finite number"),
        ("act_1001:\n  HARD_STOP_ROAS: .inf\n", "act_1001.HARD_STOP_ROAS: Input should be a finite number"),
        ("act_1001:\n  MAX_ACTIONS_PER_TICK: 100000000000000000000000\n", "act_1001.MAX_ACTIONS_PER_TICK"),
    ],
)
def test_a_bad_file_stops_the_program_naming_account_and_variable(tmp_path, text, fragment):
    with pytest.raises(SettingsError, match="META_ACCOUNTS_FILE") as error:
        load_settings(meta_accounts_file=write(tmp_path, text))
    assert fragment in str(error.value) and "\n" not in str(error.value)


# The classic "billion laughs": ten levels of nine aliases, a billion strings once expanded.
ALIAS_BOMB = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{name}: &{name} [{', '.join(['*' + below] * 9)}]\n" for below, name in zip("abcdefghi", "bcdefghij")
) + "act_1001: {MAX_DAILY_SPEND_USD: *j}\n"


def test_an_alias_bomb_is_refused_at_once_in_a_short_message(tmp_path):
    """Issue 10: 587 bytes of aliases took 35 s and 1.5 GB and printed a 226 MB message."""
    started = time.monotonic()
    with pytest.raises(SettingsError) as error:
        load_settings(meta_accounts_file=write(tmp_path, ALIAS_BOMB))
    assert time.monotonic() - started < 0.5
    assert "META_ACCOUNTS_FILE" in str(error.value) and len(str(error.value)) < 300
    assert "line 1 column 4: anchors and aliases (& and *) are not allowed" in str(error.value)


def test_anchors_are_refused_even_unused(tmp_path):
    with pytest.raises(SettingsError, match="line 1 column 11: anchors and aliases"):
        load_settings(meta_accounts_file=write(tmp_path, "act_1001: &rails {MAX_DAILY_SPEND_USD: 5}\n"))


def test_a_binary_file_is_refused_naming_the_variable(tmp_path):
    path = tmp_path / "accounts.yaml"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(SettingsError, match=r"META_ACCOUNTS_FILE .*accounts.yaml: not UTF-8 text: byte 0x89 at line 1 column 1$"):
        load_settings(meta_accounts_file=str(path))


def test_an_echoed_value_is_cut(tmp_path):
    with pytest.raises(SettingsError) as error:
        load_settings(meta_accounts_file=write(tmp_path, "act_1001: {MAX_DAILY_SPEND_USD: " + "9x" * 50_000 + "}\n"))
    message = str(error.value)
    assert "act_1001.MAX_DAILY_SPEND_USD: Input should be a valid number" in message and len(message) < 300
    assert "(got '9x9x" in message and "..." in message


def test_each_accounts_cycle_runs_with_its_own_guard_rails(tmp_path, monkeypatch):
    """Two accounts, one override: each account's Dagster run applies its own limits."""
    monkeypatch.setenv("META_AD_ACCOUNT_IDS", "act_1001,act_2002")
    monkeypatch.setenv("META_ACCOUNTS_FILE", write(tmp_path, "act_1001: {MAX_DAILY_CHANGE_PCT: 0.10, MAX_AUTO_CHANGE_PCT: 0.05}\n"))
    monkeypatch.setenv("META_ADS_DATABASE_URL", f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    job = build_definitions(load_settings()).resolve_job_def(CYCLE_JOB_NAME)
    raised = {}
    with DagsterInstance.get() as instance:
        for account in ("act_1001", "act_2002"):
            result = job.execute_in_process(instance=instance, partition_key=account)
            assert result.success
            actions = result.output_for_node("optimization_cycle")
            black_friday = actions[actions["entity_id"] == account.removeprefix("act_") + "001"].iloc[0]
            raised[account] = (int(black_friday["new_budget_minor"]), " ".join(black_friday["reasons"]))
    assert raised["act_1001"][0] == 55_000 and "to the 10% daily limit" in raised["act_1001"][1]
    assert raised["act_2002"][0] == 60_000 and "to the 20% daily limit" in raised["act_2002"][1]
