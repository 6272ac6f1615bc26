"""A webhook receiver on 127.0.0.1, as a desk's chat or a coordinator's hook: it keeps every
JSON body posted to it, as sent and as read, with its path, headers and the moment it came."""

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from devstack.ports import free_port


@dataclass(frozen=True)
class Posted:
    at: float
    path: str
    headers: dict[str, str]
    raw: bytes
    body: Any


class Webhooks:
    """Serving once `receiving` runs it."""

    def __init__(self) -> None:
        self.posted: list[Posted] = []
        received = self.posted

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = {name.lower(): value for name, value in self.headers.items()}
                posted = Posted(time.time(), self.path, headers, raw, json.loads(raw))
                received.append(posted)  # one append: thread-safe
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the test reads `posted`, not a log

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def to(self, path: str) -> list[Posted]:
        return [posted for posted in self.posted if posted.path == path]


@contextmanager
def receiving() -> Iterator[Webhooks]:
    webhooks = Webhooks()
    serving = threading.Thread(target=webhooks.server.serve_forever, daemon=True)
    serving.start()
    try:
        yield webhooks
    finally:
        webhooks.server.shutdown()
        webhooks.server.server_close()
