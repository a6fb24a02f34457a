"""Real servers on 127.0.0.1 that receive alerts in the tests: a webhook and a minimal SMTP server."""

from __future__ import annotations

import json
import socketserver
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Webhook:
    """An HTTP server taking JSON POSTs (a Slack incoming webhook's shape); ``status`` is what it answers."""

    def __init__(self, status: int = 200):
        self.received: list[dict] = []
        self.status = status
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.received.append({"path": self.path, "content_type": self.headers["Content-Type"], "json": json.loads(body)})
                self.send_response(hook.status)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/services/T000/B000/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def texts(self) -> list[str]:
        return [item["json"]["text"] for item in self.received]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Smtp:
    """Just enough SMTP (RFC 5321, no extensions) to receive messages: what smtplib sends."""

    def __init__(self):
        self.messages: list[dict] = []
        box = self

        class Handler(socketserver.StreamRequestHandler):
            def reply(self, line: str):
                self.wfile.write(line.encode() + b"\r\n")

            def handle(self):
                self.reply("220 localhost test SMTP")
                envelope = {"from": None, "to": [], "data": ""}
                while line := self.rfile.readline().decode():
                    verb = line[:4].upper()
                    if verb in ("EHLO", "HELO"):
                        self.reply("250 localhost")
                    elif verb == "MAIL":
                        envelope["from"] = line.split(":", 1)[1].strip().strip("<>")
                        self.reply("250 OK")
                    elif verb == "RCPT":
                        envelope["to"].append(line.split(":", 1)[1].strip().strip("<>"))
                        self.reply("250 OK")
                    elif verb == "DATA":
                        self.reply("354 end with <CRLF>.<CRLF>")
                        data = []
                        while (part := self.rfile.readline().decode()) not in (".\r\n", ""):
                            data.append(part)
                        box.messages.append({**envelope, "data": "".join(data)})
                        envelope = {"from": None, "to": [], "data": ""}
                        self.reply("250 OK queued")
                    elif verb == "QUIT":
                        self.reply("221 bye")
                        return
                    else:
                        self.reply("250 OK")

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
