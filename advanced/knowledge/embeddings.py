"""Text embedding providers for the knowledge base: `embed(texts) -> vectors` of 1536 floats.

Three implementations, chosen by EMBEDDING_PROVIDER (`embedding_provider()`):

- `LocalEmbeddingProvider` ("local", the default): WordLlama's static token embeddings
  (`wordllama` 0.4, model l2_supercat, 256 dimensions, 16 MB of weights inside the wheel),
  averaged over the text's tokens and L2-normalised, then zero-padded to the column's 1536
  dimensions (padding changes neither norms nor dot products, so cosine distances are the
  model's own). Semantic: "money back" lands near "refund". Runs on CPU with numpy and the
  `tokenizers` library, loads once per process (~1 s), downloads nothing: the package's own
  folder is given as its cache with downloads disabled (its default lookup searches a
  `tokenizer/` folder the wheel does not have, then would fetch from a hub).
- `HashingEmbeddingProvider` ("hashing"): signed feature hashing of word unigrams,
  word bigrams and character 3-5-grams into 1536 dimensions. Deterministic across processes
  and machines (blake2b, never Python's per-process randomised `hash()`), no model files, no
  network. It captures lexical overlap, not meaning: "refund" and "money back" are far apart.
- `OpenAIEmbeddingProvider` ("openai", needs `OPENAI_API_KEY`): `POST {OPENAI_BASE_URL}/embeddings`
  with the standard library's HTTP client, in batches, asking for exactly 1536 dimensions.

Vectors from different models live in different spaces; every stored vector records the
`model` that produced it (`knowledge_base.embedding_model`) so a search only compares like
with like.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
import threading
import time
import unicodedata
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

EMBEDDING_DIMENSIONS = 1536  # advanced.models.EMBEDDING_DIMENSIONS; kept import-free of Django


class EmbeddingError(RuntimeError):
    """The provider could not embed the texts (unreachable, refused, or a malformed answer)."""


@dataclass(frozen=True)
class EmbeddedQuery:
    """A query's vector, and whether the text was cut to the model's `max_tokens` first."""

    vector: list[float]
    truncated: bool = False
    tokens: int | None = None  # tokens the model read (None: the provider does not count)


class EmbeddingProvider(ABC):
    """Turns texts into L2-normalised vectors of `dimensions` floats."""

    name: str
    model: str
    dimensions: int = EMBEDDING_DIMENSIONS
    # Tokens of one text the model reads; the rest is cut (None: no limit applied here).
    max_tokens: int | None = None

    @abstractmethod
    def embed(self, texts: list[str]) -> list[list[float]]:
        """One vector per text, in the order given."""

    def embed_array(self, texts: list[str]) -> np.ndarray:
        """The same vectors as a (len(texts), dimensions) float32 array: what the service paths
        store (binary parameters, no Python floats). Providers computing in numpy override it;
        the others (hashing, openai) are converted from `embed`."""
        import numpy as np

        array = np.asarray(self.embed(texts), dtype=np.float32)
        return array.reshape(len(texts), self.dimensions)

    def embed_one(self, text: str) -> list[float]:
        return self.embed([text])[0]

    def embed_query(self, text: str) -> EmbeddedQuery:
        """A search query's vector, saying whether the text was truncated."""
        return EmbeddedQuery(vector=self.embed_one(text))


class CountedEmbeddingProvider(EmbeddingProvider):
    """A provider computing in numpy that counts each text's tokens (local models): `embed`,
    `embed_array` and `embed_query` all come from `embed_counted`."""

    @abstractmethod
    def embed_counted(self, texts: list[str]) -> tuple[np.ndarray, list[int]]:
        """(len(texts), dimensions) float32 rows, and each text's token count before truncation."""

    def embed(self, texts: list[str]) -> list[list[float]]:
        # tolist(): C conversion to Python floats, 10x a comprehension over numpy scalars; still
        # half the local model's time (1,536 floats a text): the service paths use embed_array.
        return self.embed_array(texts).tolist()

    def embed_array(self, texts: list[str]) -> np.ndarray:
        return self.embed_counted(texts)[0]

    def embed_query(self, text: str) -> EmbeddedQuery:
        array, counts = self.embed_counted([text])
        limit = self.max_tokens or counts[0]
        return EmbeddedQuery(vector=array[0].tolist(), truncated=counts[0] > limit, tokens=min(counts[0], limit))


def document_text(*, title: str, content: str) -> str:
    """What a document's embedding is computed from: the title carries as much signal as the body."""
    return f"{title.strip()}\n\n{content.strip()}".strip()


# --- hashing ------------------------------------------------------------------------------

_WORD = re.compile(r"\w+")
# Relative weight of each feature family in the final vector. Each family is normalised first,
# so a long text's hundreds of character n-grams cannot drown out its words.
_FAMILY_WEIGHTS = {"w": 1.0, "b": 0.5, "c": 1.0}
_CHAR_NGRAMS = (3, 4, 5)


def normalize_text(text: str) -> str:
    """NFKC, lowercase, whitespace collapsed to single spaces."""
    return " ".join(unicodedata.normalize("NFKC", text).lower().split())


@lru_cache(maxsize=1 << 17)
def _bucket(feature: str, dimensions: int) -> tuple[int, float]:
    """(index, sign) of a feature: blake2b is stable across processes, unlike hash()."""
    digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=8, person=b"kb-hash-v1").digest()
    value = int.from_bytes(digest, "big")
    # The sign comes from bits the index does not use, so collisions cancel out on average.
    return (value & 0xFFFFFFFF) % dimensions, -1.0 if value >> 63 else 1.0


def _features(text: str) -> dict[str, Counter[str]]:
    normalized = normalize_text(text)
    words = _WORD.findall(normalized)
    # Padding marks the start and end of the text; a one-character text still yields a 3-gram.
    padded = f" {normalized} "
    return {
        "w": Counter(words),
        "b": Counter(f"{a} {b}" for a, b in itertools.pairwise(words)),
        "c": Counter(padded[i : i + n] for n in _CHAR_NGRAMS for i in range(len(padded) - n + 1)),
    }


class HashingEmbeddingProvider(EmbeddingProvider):
    """Signed feature hashing with sublinear term frequency (1 + ln tf), L2-normalised."""

    name = "hashing"
    model = "hashing-v1"

    def __init__(self, *, dimensions: int = EMBEDDING_DIMENSIONS) -> None:
        self.dimensions = dimensions

    def embed(self, texts: list[str]) -> list[list[float]]:
        return [self._embed(text) for text in texts]

    def _embed(self, text: str) -> list[float]:
        vector = [0.0] * self.dimensions
        for family, counts in _features(text).items():
            part: dict[int, float] = {}
            for feature, tf in counts.items():
                index, sign = _bucket(f"{family}:{feature}", self.dimensions)
                part[index] = part.get(index, 0.0) + sign * (1.0 + math.log(tf))
            norm = math.sqrt(sum(v * v for v in part.values()))
            if norm == 0.0:
                continue
            scale = _FAMILY_WEIGHTS[family] / norm
            for index, value in part.items():
                vector[index] += value * scale
        norm = math.sqrt(sum(v * v for v in vector))
        if norm == 0.0:
            # Only an empty or all-whitespace text gets here; cosine distance to a zero
            # vector is undefined, so refuse rather than store one.
            raise EmbeddingError("Cannot embed an empty text.")
        return [v / norm for v in vector]


# --- local model (WordLlama) --------------------------------------------------------------

WORDLLAMA_CONFIG = "l2_supercat"
WORDLLAMA_DIMENSIONS = 256
# What LocalEmbeddingProvider() records per row (`embedding_model`); the HNSW index of the
# local model's vectors is partial on this value (advanced.models).
LOCAL_EMBEDDING_MODEL = f"wordllama-{WORDLLAMA_CONFIG}-{WORDLLAMA_DIMENSIONS}"


@dataclass(frozen=True)
class _StaticModel:
    matrix: np.ndarray  # (vocabulary, dimensions) float32
    tokenizer: Any  # tokenizers.Tokenizer


_model_lock = threading.Lock()
_models: dict[tuple[str, int], _StaticModel] = {}


def _load_wordllama(config: str, dimensions: int) -> _StaticModel:
    """The package's weights and tokenizer, from its own folder, never from a network."""
    with _model_lock:
        model = _models.get((config, dimensions))
        if model is None:
            try:
                import numpy as np
                import wordllama  # type: ignore[import-untyped]
                from wordllama import WordLlama
            except ImportError as exc:  # pragma: no cover - a requirement of the project
                raise EmbeddingError(f"EMBEDDING_PROVIDER=local needs the wordllama package: {exc}") from exc
            folder = Path(wordllama.__file__).parent
            try:
                inference = WordLlama.load(config=config, dim=dimensions, cache_dir=folder, disable_download=True)
            except (FileNotFoundError, OSError, ValueError) as exc:
                raise EmbeddingError(f"Cannot load the WordLlama model {config}-{dimensions}: {exc}") from exc
            tokenizer = inference.tokenizer
            # We pool per text ourselves (no padding to the batch's longest text).
            tokenizer.no_padding()
            tokenizer.no_truncation()
            matrix = np.ascontiguousarray(inference.embedding, dtype=np.float32)
            model = _StaticModel(matrix=matrix, tokenizer=tokenizer)
            _models[(config, dimensions)] = model
        return model


def preload_local() -> None:
    """Load the default model and the sparse product it embeds with now (see
    advanced.apps.AdvancedConfig.server_warm_up): a server's first query otherwise pays both."""
    import scipy.sparse  # noqa: F401  (its first import is most of the cost)

    _load_wordllama(WORDLLAMA_CONFIG, WORDLLAMA_DIMENSIONS)


class LocalEmbeddingProvider(CountedEmbeddingProvider):
    """WordLlama static embeddings: mean of the text's token vectors (the first `max_tokens`),
    L2-normalised and zero-padded to `dimensions`."""

    name = "local"
    # 256 tokens is the length the model was trained on (its l2_supercat.toml); averaging
    # more only blurs a query. A document's tail beyond it still counts for keyword search.
    max_tokens: int | None = 256

    def __init__(
        self,
        *,
        config: str = WORDLLAMA_CONFIG,
        model_dimensions: int = WORDLLAMA_DIMENSIONS,
        dimensions: int = EMBEDDING_DIMENSIONS,
        max_tokens: int = 256,
    ) -> None:
        if model_dimensions > dimensions:
            raise EmbeddingError(f"A {model_dimensions}-d model does not fit a {dimensions}-d column.")
        self.config = config
        self.model_dimensions = model_dimensions
        self.dimensions = dimensions
        self.max_tokens = max_tokens
        self.model = f"wordllama-{config}-{model_dimensions}"

    def embed_counted(self, texts: list[str]) -> tuple[np.ndarray, list[int]]:
        """(len(texts), dimensions) float32 rows, and each text's token count before truncation."""
        import numpy as np
        from scipy.sparse import csr_matrix

        for position, text in enumerate(texts):
            if not text.strip():
                raise EmbeddingError(f"Cannot embed an empty text (input {position}).")
        model = _load_wordllama(self.config, self.model_dimensions)
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        if not texts:
            return out, []
        encodings = model.tokenizer.encode_batch(texts, add_special_tokens=False)
        counts = [len(encoding.ids) for encoding in encodings]
        limit = self.max_tokens or max(counts)
        ids = [encoding.ids[:limit] for encoding in encodings]
        lengths = np.array([len(row) for row in ids], dtype=np.int64)
        if (lengths == 0).any():
            # Text that the tokenizer turns into nothing (e.g. only control characters).
            raise EmbeddingError(f"Cannot embed a text without tokens (input {int(np.argmin(lengths))}).")
        flat = np.fromiter(itertools.chain.from_iterable(ids), dtype=np.int32, count=int(lengths.sum()))
        np.clip(flat, 0, model.matrix.shape[0] - 1, out=flat)
        indptr = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
        # Token counts per text (a sparse texts x vocabulary matrix) times the embedding matrix:
        # the sums of each text's token vectors without materialising one 256-float row per
        # token (2000 texts of ~120 tokens: 245 MB gathered, 785 -> ~2,000 texts/s).
        occurrences = csr_matrix(
            (np.ones(len(flat), dtype=np.float32), flat, indptr), shape=(len(texts), model.matrix.shape[0])
        )
        # The mean's 1/n cancels in the normalisation: sums suffice.
        sums = np.asarray(occurrences @ model.matrix, dtype=np.float32)
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        if (norms == 0).any():
            raise EmbeddingError("A text's token vectors cancel out; it has no direction to compare.")
        # The model's values go last, zeros first: PostgreSQL's pglz gives up on a value whose
        # first KB does not compress, so only zeros in front let the column (STORAGE MAIN)
        # keep the vector compressed in the row (1,223 bytes instead of 6,152 out of line).
        out[:, -self.model_dimensions :] = sums / norms
        return out, counts


# --- OpenAI -------------------------------------------------------------------------------

# HTTP answers worth another try: rate limited or a transient server fault.
_RETRYABLE = frozenset({408, 409, 429, 500, 502, 503, 504})


class OpenAIEmbeddingProvider(EmbeddingProvider):
    """The OpenAI embeddings endpoint (or any server speaking its protocol at `base_url`)."""

    name = "openai"

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str = "https://api.openai.com/v1",
        model: str = "text-embedding-3-small",
        dimensions: int = EMBEDDING_DIMENSIONS,
        batch_size: int = 100,
        timeout: float = 30.0,
        retries: int = 2,
        backoff: float = 1.0,
    ) -> None:
        if not api_key:
            raise EmbeddingError("OpenAIEmbeddingProvider needs an API key (OPENAI_API_KEY).")
        if not 1 <= batch_size <= 2048:
            # 2048 inputs is the endpoint's own limit per request.
            raise EmbeddingError(f"batch_size must be between 1 and 2048; got {batch_size}.")
        self.api_key = api_key
        self.url = base_url.rstrip("/") + "/embeddings"
        self.model = model
        self.dimensions = dimensions
        self.batch_size = batch_size
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff

    def embed(self, texts: list[str]) -> list[list[float]]:
        for position, text in enumerate(texts):
            if not text.strip():
                raise EmbeddingError(f"Cannot embed an empty text (input {position}).")
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            vectors.extend(self._request(texts[start : start + self.batch_size]))
        return vectors

    def _request(self, batch: Sequence[str]) -> list[list[float]]:
        body = json.dumps(
            {"model": self.model, "input": list(batch), "dimensions": self.dimensions, "encoding_format": "float"}
        ).encode("utf-8")
        request = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={
                "Authorization": f"Bearer {self.api_key}",
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
        )
        attempt = 0
        while True:
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    payload = response.read()
                break
            except urllib.error.HTTPError as exc:
                detail = _error_message(exc)
                if exc.code in _RETRYABLE and attempt < self.retries:
                    attempt += 1
                    time.sleep(self._delay(attempt, exc.headers.get("Retry-After")))
                    continue
                raise EmbeddingError(f"Embeddings request to {self.url} failed: HTTP {exc.code}: {detail}") from exc
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                if attempt < self.retries:
                    attempt += 1
                    time.sleep(self._delay(attempt, None))
                    continue
                reason = getattr(exc, "reason", exc)
                raise EmbeddingError(f"Embeddings endpoint {self.url} unreachable: {reason}") from exc
        return self._parse(payload, len(batch))

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            try:
                return min(float(retry_after), 30.0)
            except ValueError:
                pass
        return self.backoff * (2 ** (attempt - 1))

    def _parse(self, payload: bytes, expected: int) -> list[list[float]]:
        try:
            document = json.loads(payload)
            items = sorted(document["data"], key=lambda item: item["index"])
            vectors = [[float(v) for v in item["embedding"]] for item in items]
        except (ValueError, KeyError, TypeError) as exc:
            raise EmbeddingError(f"Malformed answer from {self.url}: {exc!r}") from exc
        if len(vectors) != expected:
            raise EmbeddingError(f"{self.url} returned {len(vectors)} embeddings for {expected} inputs.")
        for position, vector in enumerate(vectors):
            if len(vector) != self.dimensions:
                raise EmbeddingError(
                    f"{self.url} returned {len(vector)} dimensions for input {position}; expected "
                    f"{self.dimensions} (does model {self.model!r} support the `dimensions` parameter?)."
                )
            if not all(math.isfinite(v) for v in vector):
                raise EmbeddingError(f"{self.url} returned a non-finite number for input {position}.")
        return vectors


def _error_message(exc: urllib.error.HTTPError) -> str:
    """The API's own explanation ({"error": {"message": ...}}), else the body or the reason."""
    try:
        raw = exc.read()
    except OSError:
        raw = b""
    try:
        document: Any = json.loads(raw)
        message = document["error"]["message"] if isinstance(document.get("error"), dict) else document["error"]
        return str(message)
    except (ValueError, KeyError, TypeError, AttributeError):
        text = raw.decode("utf-8", "replace").strip()
        return text[:300] or str(exc.reason)


EMBEDDING_PROVIDERS = ("local", "hashing", "openai")


def embedding_provider() -> EmbeddingProvider:
    """The provider EMBEDDING_PROVIDER names: "local" (default), "hashing" or "openai"."""
    from django.conf import settings

    name = settings.EMBEDDING_PROVIDER
    if name == "openai":
        return OpenAIEmbeddingProvider(
            api_key=settings.OPENAI_API_KEY,
            base_url=settings.OPENAI_BASE_URL,
            model=settings.EMBEDDING_MODEL,
            batch_size=settings.KNOWLEDGE_EMBEDDING_BATCH_SIZE,
            timeout=settings.KNOWLEDGE_EMBEDDING_TIMEOUT,
        )
    if name == "hashing":
        return HashingEmbeddingProvider()
    if name == "local":
        return LocalEmbeddingProvider()
    raise EmbeddingError(f"EMBEDDING_PROVIDER must be one of {', '.join(EMBEDDING_PROVIDERS)}; got {name!r}.")
