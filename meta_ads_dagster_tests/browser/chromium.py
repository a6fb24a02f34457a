"""Headless Chromium driven through the DevTools protocol: navigate, evaluate, click, screenshot.

Debian's ``chromium`` package, started with ``--remote-debugging-port=0`` in a fresh profile; the
port it picked is read from the profile's ``DevToolsActivePort`` file, and the page is driven over
its DevTools WebSocket with the ``websockets`` client (already installed with dagster-webserver),
so no browser driver or extra Python package is needed. Every wait is bounded.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests
from websockets.sync.client import ClientConnection, connect

STARTUP_TIMEOUT = 30  # seconds until Chromium answers on its DevTools port
COMMAND_TIMEOUT = 60  # seconds for one DevTools command


def chromium_path() -> str | None:
    """The Chromium binary (Debian installs it as ``chromium``), or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


class Page:
    """One browser tab over its DevTools WebSocket."""

    def __init__(self, socket: ClientConnection):
        self.socket = socket
        self.ids = itertools.count(1)

    def send(self, method: str, **params) -> dict:
        """One DevTools command; its result (the events that arrive meanwhile are dropped)."""
        command_id = next(self.ids)
        self.socket.send(json.dumps({"id": command_id, "method": method, "params": params}))
        deadline = time.monotonic() + COMMAND_TIMEOUT
        while True:
            message = json.loads(self.socket.recv(timeout=max(0.1, deadline - time.monotonic())))
            if message.get("id") == command_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page (JSON-serializable)."""
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"JavaScript error: {result['exceptionDetails']}")
        return result["result"].get("value")

    def goto(self, url: str) -> None:
        self.send("Page.navigate", url=url)

    def wait_for(self, expression: str, timeout: float, what: str):
        """Poll ``expression`` until it is truthy; its value. Fails naming ``what`` and showing the
        start of the page's text when it never is."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                text = self.evaluate("document.body ? document.body.innerText.slice(0, 3000) : ''")
                raise AssertionError(f"{what}: not on the page within {timeout:.0f} s; the page shows:\n{text}")
            time.sleep(0.5)

    def holds_for(self, expression: str, seconds: float) -> bool:
        """Whether ``expression`` stays falsy for ``seconds`` (a negative control)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.evaluate(expression):
                return False
            time.sleep(0.5)
        return True

    def screenshot(self, path: Path) -> Path:
        """The page as it is rendered now, as a PNG file."""
        data = self.send("Page.captureScreenshot", format="png")["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path


@contextmanager
def headless_chromium(profile: Path, log: Path, width: int = 1600, height: int = 1200) -> Iterator[Page]:
    """A headless Chromium with a fresh profile in ``profile`` (its output in ``log``), and its
    first tab at ``width`` × ``height`` CSS pixels. Stopped by process group on exit."""
    binary = chromium_path()
    if binary is None:
        raise RuntimeError("chromium is not installed (apt-get install -y chromium)")
    profile.mkdir(parents=True, exist_ok=True)
    args = [
        binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
        "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--mute-audio",
        "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", f"--user-data-dir={profile}",
        f"--window-size={width},{height}", "about:blank",
    ]
    with open(log, "wb") as out:
        process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        port = _devtools_port(profile, process, log)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            tabs = [t for t in requests.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json() if t.get("type") == "page"]
            if tabs:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"chromium opened no tab within {STARTUP_TIMEOUT} s")
            time.sleep(0.2)
        with connect(tabs[0]["webSocketDebuggerUrl"], max_size=None, open_timeout=COMMAND_TIMEOUT) as socket:
            page = Page(socket)
            page.send("Page.enable")
            page.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
            yield page
    finally:
        for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(process.pid, sig)
                process.wait(timeout=wait)
                break
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue


def _devtools_port(profile: Path, process: subprocess.Popen, log: Path) -> int:
    """The DevTools port Chromium chose, from the ``DevToolsActivePort`` file it writes."""
    marker = profile / "DevToolsActivePort"
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"chromium exited with {process.returncode}: {log.read_text(errors='replace')[-2000:]}")
        lines = marker.read_text().splitlines() if marker.exists() else []
        if lines and lines[0].isdigit():
            return int(lines[0])
        time.sleep(0.1)
    raise RuntimeError(f"chromium did not open its DevTools port within {STARTUP_TIMEOUT} s: {log.read_text(errors='replace')[-2000:]}")
