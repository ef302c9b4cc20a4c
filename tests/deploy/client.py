"""A tiny HTTP client for tests against a real server (no redirects followed, no cookies kept)."""

from __future__ import annotations

import http.client
import json
import socket
from dataclasses import dataclass
from typing import Any


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")


def fetch(
    base_url: str, path: str, *, method: str = "GET", headers: dict[str, str] | None = None, body: bytes | None = None
) -> Reply:
    host, port = base_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return Reply(status=response.status, headers=response.headers, body=response.read())
    finally:
        conn.close()


def free_port() -> int:
    """A free loopback port of 18300-18399, the range of the servers these tests start by hand (a
    development server, `make serve`), so that they stay apart from other servers of a shared
    machine."""
    for port in range(18300, 18400):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 18300-18399")
