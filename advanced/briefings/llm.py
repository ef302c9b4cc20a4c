"""Who writes a briefing's executive summary: the deterministic template, or a language model.

A writer gets the briefing's figures (`key_metrics`, `insights`) and the template's text, and
returns the summary with the model that wrote it and the tokens it cost. The template writer
returns the template's text unchanged. The OpenAI writer calls a chat completions endpoint
(OpenAI's, or any server that speaks the same protocol at `OPENAI_BASE_URL`) with the figures
as JSON; every way that call can fail raises `SummaryWriterError`, and the caller then keeps
the template's text.

The HTTP call uses the standard library: one POST does not justify a client dependency.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Protocol

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

TEMPLATE_MODEL = "template-v1"
PROVIDERS = ("template", "openai")
# generation_model is varchar(100).
MODEL_NAME_MAX_LENGTH = 100

SYSTEM_PROMPT = (
    "You write the executive summary of a Shopify shop's briefing for its CEO: three to six "
    "plain sentences, no markdown, no headings, no lists. Use only figures that appear in the "
    "JSON you are given, written exactly as given; never estimate, extrapolate or invent a "
    "number. Lead with the largest movements in `insights`. When a section is empty, leave it out."
)


@dataclass(frozen=True)
class WrittenSummary:
    text: str
    model: str
    tokens: int | None


class SummaryWriterError(Exception):
    """The provider did not produce a summary (network, HTTP status, response shape)."""


class SummaryWriter(Protocol):
    # Named in the command's output ("openai failed: ...").
    name: str

    def write(self, *, briefing: dict[str, Any], template_text: str) -> WrittenSummary:
        """The summary of `briefing` ({shop, period, key_metrics, insights})."""
        ...


class TemplateWriter:
    """The deterministic summary the service composed: no provider, no tokens."""

    name = "template"

    def write(self, *, briefing: dict[str, Any], template_text: str) -> WrittenSummary:
        return WrittenSummary(text=template_text, model=TEMPLATE_MODEL, tokens=None)


class OpenAIChatWriter:
    """A chat completions call (`POST {base_url}/chat/completions`) with the figures as JSON."""

    name = "openai"

    def __init__(self, *, api_key: str, base_url: str, model: str, timeout: float) -> None:
        self.api_key = api_key
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.timeout = timeout

    def write(self, *, briefing: dict[str, Any], template_text: str) -> WrittenSummary:
        body = {
            "model": self.model,
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": json.dumps(briefing, sort_keys=True)},
            ],
        }
        request = urllib.request.Request(
            self.url,
            data=json.dumps(body).encode(),
            method="POST",
            headers={
                "Authorization": f"Bearer {self.api_key}",
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                payload = json.loads(response.read().decode())
        except urllib.error.HTTPError as exc:
            # The error body says why (bad key, unknown model, quota); keep a bounded piece of it.
            try:
                detail = exc.read(300).decode(errors="replace").strip()
            except OSError:
                detail = str(exc.reason)
            raise SummaryWriterError(f"HTTP {exc.code} from {self.url}: {detail}") from exc
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SummaryWriterError(f"the answer from {self.url} is not JSON: {exc}") from exc
        except (OSError, http.client.HTTPException, ValueError) as exc:
            # OSError covers URLError, refused connections and timeouts; ValueError a malformed URL.
            raise SummaryWriterError(f"no answer from {self.url}: {exc}") from exc
        return self._summary(payload)

    def _summary(self, payload: Any) -> WrittenSummary:
        try:
            text = payload["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError) as exc:
            raise SummaryWriterError("the answer has no choices[0].message.content") from exc
        if isinstance(text, str):
            # PostgreSQL text cannot hold NUL; a model emitting one must not fail the shop's write.
            text = text.replace("\x00", "")
        if not isinstance(text, str) or not text.strip():
            raise SummaryWriterError("the answer's message content is empty")
        usage = payload.get("usage")
        tokens = usage.get("total_tokens") if isinstance(usage, dict) else None
        if not isinstance(tokens, int) or isinstance(tokens, bool) or tokens < 0:
            tokens = None
        # The server names the model snapshot that answered (e.g. gpt-4o-mini-2024-07-18).
        served = payload.get("model")
        model = served if isinstance(served, str) and served else self.model
        return WrittenSummary(text=text.strip(), model=str(model)[:MODEL_NAME_MAX_LENGTH], tokens=tokens)


def summary_writer_from_settings() -> SummaryWriter:
    """The writer LLM_PROVIDER names; ImproperlyConfigured when it cannot be built."""
    provider = (settings.LLM_PROVIDER or "template").strip().lower()
    if provider == "template":
        return TemplateWriter()
    if provider == "openai":
        if not settings.OPENAI_API_KEY:
            raise ImproperlyConfigured("LLM_PROVIDER=openai needs OPENAI_API_KEY")
        if not settings.LLM_MODEL:
            raise ImproperlyConfigured("LLM_PROVIDER=openai needs LLM_MODEL")
        return OpenAIChatWriter(
            api_key=settings.OPENAI_API_KEY,
            base_url=settings.OPENAI_BASE_URL,
            model=settings.LLM_MODEL,
            timeout=settings.LLM_TIMEOUT_SECONDS,
        )
    raise ImproperlyConfigured(f"LLM_PROVIDER must be one of {', '.join(PROVIDERS)}; got {settings.LLM_PROVIDER!r}")
