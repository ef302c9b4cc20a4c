"""A tiny HTTP client for tests against a real server (no redirects followed, no cookies kept)."""

from __future__ import annotations

import http.client
import json
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
