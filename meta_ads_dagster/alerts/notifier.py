"""Where an alert goes: always the log; a webhook (Slack-compatible JSON) and email when configured.

One resource, ``notifier``, built from the settings in ``resources.py``. The webhook URL and the
SMTP password are secrets, so they arrive through ``dagster.EnvVar`` (masked in the UI, never in
run config or in a log line).
"""

from __future__ import annotations

import json
import logging
import smtplib
import urllib.request
from dataclasses import dataclass
from email.message import EmailMessage

from dagster import ConfigurableResource

logger = logging.getLogger(__name__)
# A digest of a long queue stays readable (and under Slack's message limit); the rest is a count.
MAX_DETAIL_LINES = 30


@dataclass(frozen=True)
class Alert:
    """One alert: which account, what happened (a one-line title and detail lines), where to look."""

    account: str
    title: str
    details: tuple[str, ...] = ()
    run_url: str | None = None

    @property
    def subject(self) -> str:
        return f"[meta-ads] {self.account}: {self.title}"

    @property
    def text(self) -> str:
        shown = self.details[:MAX_DETAIL_LINES]
        lines = [self.subject, *(f"• {line}" for line in shown)]
        if len(self.details) > len(shown):
            lines.append(f"… and {len(self.details) - len(shown)} more")
        if self.run_url:
            lines.append(f"Run: {self.run_url}")
        return "\n".join(lines)


class AlertNotDelivered(RuntimeError):
    """A configured channel refused an alert (the message names the channel, not its secret)."""


class Notifier(ConfigurableResource):
    """Sends alerts: logged always; POSTed as ``{"text": ...}`` to ``webhook_url`` (a Slack
    incoming webhook, or anything that takes the same JSON) and emailed through ``smtp_host``
    when those are set."""

    webhook_url: str | None = None
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_from: str | None = None
    smtp_to: list[str] = []
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = True
    timeout_seconds: float = 10.0

    @property
    def channels(self) -> list[str]:
        """The channels an alert goes to besides the log."""
        return [name for name, on in (("webhook", self.webhook_url), ("email", self.smtp_host)) if on]

    def send(self, alert: Alert, log: logging.Logger | None = None) -> None:
        """Log the alert, then deliver it to every configured channel; raise AlertNotDelivered
        naming each channel that refused it (after trying them all)."""
        (log or logger).warning(alert.text)
        problems = []
        for channel, deliver in (("webhook", self._post), ("email", self._email)):
            if channel not in self.channels:
                continue
            try:
                deliver(alert)
            except (OSError, smtplib.SMTPException) as exc:  # URLError, HTTPError, timeouts are OSErrors
                problems.append(f"{channel}: {type(exc).__name__}: {_without(exc, self.webhook_url)}")
        if problems:
            raise AlertNotDelivered(f"alert for {alert.account} not delivered: " + "; ".join(problems))

    def _post(self, alert: Alert) -> None:
        request = urllib.request.Request(
            self.webhook_url, data=json.dumps({"text": alert.text}).encode(), headers={"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(request, timeout=self.timeout_seconds) as response:  # noqa: S310 (an operator's URL)
            response.read()

    def _email(self, alert: Alert) -> None:
        message = EmailMessage()
        message["Subject"] = alert.subject
        message["From"] = self.smtp_from
        message["To"] = ", ".join(self.smtp_to)
        message.set_content(alert.text)
        with smtplib.SMTP(self.smtp_host, self.smtp_port, timeout=self.timeout_seconds) as smtp:
            if self.smtp_starttls:
                smtp.starttls()
            if self.smtp_user:
                smtp.login(self.smtp_user, self.smtp_password or "")
            smtp.send_message(message)


def _without(exc: Exception, secret: str | None) -> str:
    """The error's message with the webhook URL (a credential) cut out."""
    text = str(exc)
    return text.replace(secret, "<webhook url>") if secret else text
