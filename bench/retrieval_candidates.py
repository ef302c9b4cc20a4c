"""all-MiniLM-L6-v2 as the *only* model of a shop, compared with the default by `bench/retrieval.py`.

The product runs it as the refined tier (advanced.knowledge.embeddings_transformer: its own 384-d
column, filled in the background). Here its vectors are zero-padded to the 1536-d `embedding`
column instead, so that the whole labelled shop is searched by it alone, as a candidate
default provider would be: the upper bound of the refined tier, and the reason it cannot be the
default (~30-60 documents/s against the 1,000 the issue asks for).
"""

from __future__ import annotations

import numpy as np

from advanced.knowledge.embeddings import EMBEDDING_DIMENSIONS, EmbeddedQuery, EmbeddingProvider
from advanced.knowledge.embeddings_transformer import MAX_TOKENS, REFINED_MODEL, RefinedEmbeddingProvider, model_folder


class MiniLMProvider(EmbeddingProvider):
    name = "minilm"
    model = REFINED_MODEL
    max_tokens: int | None = MAX_TOKENS

    def __init__(self) -> None:
        model_folder()  # EmbeddingError when the package is not installed: reported as skipped
        self.refined = RefinedEmbeddingProvider()

    def embed(self, texts: list[str]) -> list[list[float]]:
        return self.embed_array(texts).tolist()

    def embed_array(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), EMBEDDING_DIMENSIONS), dtype=np.float32)
        out[:, -self.refined.dimensions :] = self.refined.embed_array(texts)
        return out

    def embed_query(self, text: str) -> EmbeddedQuery:
        embedded = self.refined.embed_query(text)
        return EmbeddedQuery(
            vector=[0.0] * (EMBEDDING_DIMENSIONS - len(embedded.vector)) + embedded.vector,
            truncated=embedded.truncated,
            tokens=embedded.tokens,
        )
