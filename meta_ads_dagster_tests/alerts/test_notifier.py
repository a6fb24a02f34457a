"""The notifier delivers to a real webhook and a real SMTP server on 127.0.0.1; the log always."""

from __future__ import annotations

import logging
from email import message_from_string

import pytest

from meta_ads_dagster.alerts.notifier import Alert, AlertNotDelivered, Notifier
from meta_ads_dagster.resources import notifier
from meta_ads_dagster.settings import SettingsError, load_settings

from .servers import Smtp, Webhook

ALERT = Alert("act_1001", "hard stop triggered", ("campaign 'Summer' (100) paused",), "http://localhost:3000/runs/abc")


@pytest.fixture
def webhook():
    server = Webhook()
    yield server
    server.close()


@pytest.fixture
def smtp():
    server = Smtp()
    yield server
    server.close()


def test_by_default_an_alert_is_only_logged(caplog):
    with caplog.at_level(logging.WARNING):
        Notifier().send(ALERT)
    assert "[meta-ads] act_1001: hard stop triggered" in caplog.text and "http://localhost:3000/runs/abc" in caplog.text


def test_the_webhook_gets_slack_compatible_json(webhook):
    Notifier(webhook_url=webhook.url).send(ALERT)
    [received] = webhook.received
    assert received["content_type"] == "application/json" and received["path"] == "/services/T000/B000/hook"
    assert set(received["json"]) == {"text"}
    text = received["json"]["text"]
    assert text.splitlines()[0] == "[meta-ads] act_1001: hard stop triggered"
    assert "campaign 'Summer' (100) paused" in text and text.endswith("Run: http://localhost:3000/runs/abc")


def test_a_refused_webhook_raises_naming_the_channel_without_its_url():
    server = Webhook(status=500)
    try:
        with pytest.raises(AlertNotDelivered) as raised:
            Notifier(webhook_url=server.url).send(ALERT)
    finally:
        server.close()
    assert "webhook: HTTPError" in str(raised.value) and server.url not in str(raised.value)


def test_email_goes_through_the_smtp_server(smtp):
    Notifier(smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_from="alerts@example.com", smtp_to=["ops@example.com", "pm@example.com"],
             smtp_starttls=False).send(ALERT)
    [message] = smtp.messages
    assert message["from"] == "alerts@example.com" and message["to"] == ["ops@example.com", "pm@example.com"]
    mail = message_from_string(message["data"])
    assert mail["Subject"] == "[meta-ads] act_1001: hard stop triggered"
    assert "http://localhost:3000/runs/abc" in mail.get_payload()


def test_both_channels_are_tried_when_one_fails(smtp):
    server = Webhook(status=503)
    try:
        with pytest.raises(AlertNotDelivered, match="webhook"):
            Notifier(webhook_url=server.url, smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_from="a@example.com",
                     smtp_to=["b@example.com"], smtp_starttls=False).send(ALERT)
    finally:
        server.close()
    assert len(smtp.messages) == 1


def test_the_resource_is_built_from_the_settings_with_its_secrets_as_env_vars(monkeypatch, webhook):
    assert notifier(load_settings()).channels == []
    monkeypatch.setenv("META_ALERT_WEBHOOK_URL", webhook.url)
    monkeypatch.setenv("META_ALERT_SMTP_PASSWORD", "hunter2")
    settings = load_settings(meta_alert_smtp_host="smtp.example.com", meta_alert_smtp_from="a@example.com",
                             meta_alert_smtp_to="b@example.com, c@example.com", meta_alert_smtp_user="alerts")
    resource = notifier(settings)
    # Secrets stay EnvVars in the resource's config (masked in the UI), resolved only when it is used.
    assert type(resource.webhook_url).__name__ == "EnvVar" and type(resource.smtp_password).__name__ == "EnvVar"
    assert resource.smtp_to == ["b@example.com", "c@example.com"]
    monkeypatch.setenv("META_ALERT_WEBHOOK_URL", "hooks.slack.com/services/x")
    with pytest.raises(SettingsError, match="META_ALERT_WEBHOOK_URL"):
        notifier(load_settings())


def test_half_an_email_setting_is_refused_naming_what_is_missing():
    with pytest.raises(SettingsError, match="META_ALERT_SMTP_TO"):
        load_settings(meta_alert_smtp_host="smtp.example.com", meta_alert_smtp_from="a@example.com")
    with pytest.raises(SettingsError, match="DAGSTER_UI_URL"):
        load_settings(dagster_ui_url="localhost:3000")
    assert load_settings(dagster_ui_url="https://dagster.example.com/").dagster_ui_url == "https://dagster.example.com"


def test_a_long_digest_shows_thirty_lines_and_counts_the_rest(webhook):
    Notifier(webhook_url=webhook.url).send(Alert("act_1001", "actions queued for review", tuple(f"proposal {i}" for i in range(45))))
    text = webhook.texts[0]
    assert "• proposal 29" in text and "proposal 30" not in text and "… and 15 more" in text
