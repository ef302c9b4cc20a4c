"""Retrieval methods around the static model, compared offline, to choose
the default model's search method.

    python -m bench.retrieval_methods [--embedded-database bench_methods]

Not part of `make bench`: it informed the choices docs/performance.md records ("Methods tried
around the static model"). The labelled documents and both paraphrase sets of
bench/data/retrieval (139 labelled, 91 held out) are scored in numpy:

- WordLlama vectors computed as `LocalEmbeddingProvider` computes them (the sum of the first
  256 tokens' vectors, normalised; the padding to 1536 changes no cosine), with variants:
  token weights, title weighting, passage (sentence) vectors, pseudo-relevance feedback,
  stop words removed, word-level late interaction;
- keyword lists from the real PostgreSQL keyword search (`_keyword`: coverage, then rank) of a
  shop holding the labelled documents, on the embedded server (database `bench_methods` by
  default, or DATABASE_URL);
- fused as the service fuses (keyword hits covering at least half of the query, RRF k = 60),
  or by score (cosine + gamma x coverage).

It prints paraphrase recall@3 (labelled / held out) per method, semantic and hybrid.

`--refined` compares instead the fusions of the two-tier design (keyword, WordLlama and the
refined model all-MiniLM-L6-v2, also with half the documents refined): docs/performance.md,
"Two tiers".
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

Matrix = np.ndarray[Any, np.dtype[np.float32]]
SETS = ("paraphrase", "heldout")
SENTENCE = re.compile(r"(?<=[.!?])\s+")
WORD = re.compile(r"\w+")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embedded-database", default="bench_methods")
    parser.add_argument(
        "--refined", action="store_true", help="compare fusions with the refined model (all-MiniLM-L6-v2) instead"
    )
    args = parser.parse_args(argv)
    if not os.environ.get("DATABASE_URL"):
        os.environ["EMBEDDED_DATABASE_NAME"] = args.embedded_database
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    from config.embedded import prepare

    prepare()
    django.setup()
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)
    methods = Methods()
    if args.refined:
        methods.run_refined()
    else:
        methods.run()
    return 0


class Methods:
    def __init__(self) -> None:
        from advanced.knowledge.embeddings import _load_wordllama

        from .retrieval import load_labelled_set

        documents, questions = load_labelled_set()
        self.documents = documents
        self.keys = [d.key for d in documents]
        self.index = {key: i for i, key in enumerate(self.keys)}
        self.questions = {kind: [q for q in questions if q.kind == kind] for kind in SETS}
        model = _load_wordllama("l2_supercat", 256)
        self.matrix: Matrix = model.matrix
        self.tokenizer = model.tokenizer
        self.keyword = self._keyword_lists()
        self.stop_words = self._stop_words()

    # --- inputs ---------------------------------------------------------------------------

    def _keyword_lists(self) -> dict[str, list[list[tuple[int, float]]]]:
        """Per set and question: (document index, coverage) of every keyword hit, best first."""
        from advanced.knowledge.embeddings import HashingEmbeddingProvider
        from advanced.knowledge.services.search import _QUERY_WORD, KEYWORD_MAX_TERMS, _Filters, _keyword
        from tenancy.scope import atomic_scope, shop_scope

        from .retrieval import _save_labelled, _shop

        domain = _shop("methods")
        # Keyword search does not read the vectors: the cheap provider will do.
        _save_labelled(domain, self.documents, HashingEmbeddingProvider())
        filters = _Filters(tags=[], tags_mode="all", document_type=None)
        lists: dict[str, list[list[tuple[int, float]]]] = {}
        with atomic_scope(shop_scope(shop=domain, subject=None, member_role="owner")):
            for kind, questions in self.questions.items():
                lists[kind] = []
                for question in questions:
                    words = _QUERY_WORD.findall(question.text)[:KEYWORD_MAX_TERMS]
                    hits = _keyword(words, len(self.documents), filters=filters)
                    lists[kind].append([(self.index[d.document_key], d.keyword_coverage) for d in hits])  # type: ignore[attr-defined]
        return lists

    def _stop_words(self) -> set[str]:
        """Words of the questions PostgreSQL's English stemmer drops (its stop word list)."""
        from django.db import connection

        words = sorted({w.lower() for qs in self.questions.values() for q in qs for w in WORD.findall(q.text)})
        with connection.cursor() as cursor:
            cursor.execute("SELECT w FROM unnest(%s::text[]) w WHERE ts_lexize('english_stem', w) = '{}'", [words])
            return {row[0] for row in cursor.fetchall()}

    # --- vectors --------------------------------------------------------------------------

    def vector(self, text: str, weights: Matrix | None = None) -> Matrix:
        ids = self.tokenizer.encode(text, add_special_tokens=False).ids[:256] or [0]
        rows = self.matrix[ids]
        if weights is not None:
            rows = rows * weights[ids][:, None]
        total = rows.sum(axis=0)
        return np.asarray(total / (np.linalg.norm(total) or 1.0), dtype=np.float32)

    def scores(
        self,
        *,
        weights: Matrix | None = None,
        query_text: Callable[[str], str] = lambda t: t,
        document: Callable[[str, str], Matrix] | None = None,
        passages: str | None = None,
        alpha: float = 1.0,
        feedback: float = 0.0,
    ) -> dict[str, Matrix]:
        """Per set, a (questions x documents) score matrix of one semantic method."""
        embed_document = document or (lambda title, content: self.vector(f"{title}\n\n{content}", weights))
        base = np.stack([embed_document(d.title, d.content) for d in self.documents])
        owner, rows = [], []
        if passages:
            for j, d in enumerate(self.documents):
                sentences = [s for s in SENTENCE.split(d.content) if s.strip()]
                texts = [d.title] + ([f"{d.title}. {s}" for s in sentences] if passages == "titled" else sentences)
                for text in texts:
                    rows.append(self.vector(text, weights))
                    owner.append(j)
        out = {}
        for kind, questions in self.questions.items():
            q = np.stack([self.vector(query_text(question.text), weights) for question in questions])
            s = q @ base.T
            if feedback:
                top = np.argsort(-s, axis=1)[:, :3]
                q = q + feedback * base[top].mean(axis=1)
                q /= np.linalg.norm(q, axis=1, keepdims=True)
                s = q @ base.T
            if passages:
                best = np.full(s.shape, -9.0, dtype=np.float32)
                np.maximum.at(best.T, np.array(owner), (q @ np.stack(rows).T).T)
                s = alpha * s + (1 - alpha) * best
            out[kind] = s
        return out

    def late_interaction(self) -> dict[str, Matrix]:
        """Mean over the query's words of the best document word's cosine, plus the document cosine."""
        cache: dict[str, Matrix] = {}

        def words(text: str) -> Matrix:
            for w in WORD.findall(text):
                if w not in cache:
                    cache[w] = self.vector(w)
            return np.stack([cache[w] for w in WORD.findall(text)] or [np.zeros(256, dtype=np.float32)])

        documents = [words(f"{d.title} {d.content}") for d in self.documents]
        plain = self.scores()
        out = {}
        for kind, questions in self.questions.items():
            s = np.zeros_like(plain[kind])
            for i, question in enumerate(questions):
                q = words(question.text)
                s[i] = [float((q @ d.T).max(axis=1).mean()) for d in documents]
            out[kind] = s + plain[kind]
        return out

    # --- ranking --------------------------------------------------------------------------

    def recall3(self, kind: str, orders: Sequence[Sequence[int]]) -> float:
        hits = 0
        for question, order in zip(self.questions[kind], orders, strict=True):
            hits += any(self.keys[j] in question.relevant for j in order[:3])
        return hits / len(orders)

    def semantic(self, s: dict[str, Matrix]) -> str:
        orders = {k: [np.argsort(-row, kind="stable").tolist() for row in s[k]] for k in SETS}
        return " / ".join(f"{self.recall3(k, orders[k]):.3f}" for k in SETS)

    def hybrid(self, s: dict[str, Matrix], depth: int = 10, gamma: float | None = None) -> str:
        results = []
        for kind in SETS:
            orders: list[list[int]] = []
            for i, row in enumerate(s[kind]):
                fused: dict[int, float] = {}
                if gamma is not None:  # score fusion
                    fused = dict(enumerate(row.tolist()))
                    for j, coverage in self.keyword[kind][i]:
                        fused[j] += gamma * coverage
                else:
                    for rank, j in enumerate(np.argsort(-row, kind="stable")[:depth].tolist(), start=1):
                        fused[j] = 1 / (60 + rank)
                    hits = [j for j, coverage in self.keyword[kind][i] if coverage >= 0.5][:depth]
                    for rank, j in enumerate(hits, start=1):
                        fused[j] = fused.get(j, 0.0) + 1 / (60 + rank)
                values = row.tolist()
                orders.append(sorted(fused, key=lambda j: (-fused[j], -values[j])))
            results.append(f"{self.recall3(kind, orders):.3f}")
        return " / ".join(results)

    def fused(self, lists: Callable[[str, int], list[list[int]]], depth: int = 10) -> str:
        """Recall@3 of RRF (k = 60) over the given semantic lists (document indexes, best first)
        and the service's keyword list (hits covering at least half of the query)."""
        results = []
        for kind in SETS:
            orders: list[list[int]] = []
            for i in range(len(self.questions[kind])):
                fused: dict[int, float] = {}
                semantic = lists(kind, i)
                keyword = [[j for j, coverage in self.keyword[kind][i] if coverage >= 0.5]]
                for ranking in semantic + keyword:
                    for rank, j in enumerate(ranking[:depth], start=1):
                        fused[j] = fused.get(j, 0.0) + 1 / (60 + rank)
                first = {j: r for ranking in reversed(semantic) for r, j in enumerate(ranking)}
                orders.append(sorted(fused, key=lambda j: (-fused[j], first.get(j, 10**6), j)))
            results.append(f"{self.recall3(kind, orders):.3f}")
        return " / ".join(results)

    def run_refined(self) -> None:
        """Fusions of keyword, WordLlama and the refined model (docs/performance.md, "Two tiers")."""
        from advanced.knowledge.embeddings import document_text
        from advanced.knowledge.embeddings_transformer import RefinedEmbeddingProvider

        refined = RefinedEmbeddingProvider()
        texts = [document_text(title=d.title, content=d.content) for d in self.documents]
        minilm_documents = refined.embed_array(texts)
        minilm = {
            kind: refined.embed_array([q.text for q in questions]) @ minilm_documents.T
            for kind, questions in self.questions.items()
        }
        wordllama = self.scores()
        rng = np.random.default_rng(14)
        # Half the documents refined (a shop whose background job is half way through).
        half = rng.permutation(len(self.documents)) < len(self.documents) // 2

        def order(row: Matrix, keep: np.ndarray | None = None) -> list[int]:
            ranking = np.argsort(-row, kind="stable").tolist()
            return ranking if keep is None else [j for j in ranking if keep[j]]

        def mixed(kind: str, i: int) -> list[int]:
            # One semantic list: refined documents by MiniLM cosine, the rest by WordLlama cosine.
            row = np.where(half, minilm[kind][i], wordllama[kind][i])
            return order(row)

        variants: list[tuple[str, Callable[[str, int], list[list[int]]], dict[str, Any]]] = [
            ("keyword + WordLlama (today's hybrid)", lambda k, i: [order(wordllama[k][i])], {}),
            ("(a) keyword + MiniLM", lambda k, i: [order(minilm[k][i])], {}),
            ("(a) keyword + MiniLM, depth 20", lambda k, i: [order(minilm[k][i])], {"depth": 20}),
            ("(b) keyword + WordLlama + MiniLM", lambda k, i: [order(minilm[k][i]), order(wordllama[k][i])], {}),
            (
                "(b) keyword + WordLlama + MiniLM, depth 20",
                lambda k, i: [order(minilm[k][i]), order(wordllama[k][i])],
                {"depth": 20},
            ),
            (
                "(c) keyword + (MiniLM + WordLlama cosine sum)",
                lambda k, i: [order(minilm[k][i] + wordllama[k][i])],
                {},
            ),
            (
                "(c) keyword + (MiniLM + 0.5 WordLlama cosine)",
                lambda k, i: [order(minilm[k][i] + 0.5 * wordllama[k][i])],
                {},
            ),
            (
                "half refined, (a) with WordLlama for the unrefined",
                lambda k, i: [order(minilm[k][i], half), order(wordllama[k][i], ~half)],
                {},
            ),
            (
                "half refined, (b) WordLlama over all, MiniLM over the refined",
                lambda k, i: [order(minilm[k][i], half), order(wordllama[k][i])],
                {},
            ),
            ("half refined, one list of mixed cosines", lambda k, i: [mixed(k, i)], {}),
        ]
        print("paraphrase recall@3, labelled / held out")
        print(f"{'method':62s} {'semantic':>15s} {'hybrid':>15s}")
        print(f"{'MiniLM alone':62s} {self.semantic(minilm):>15s} {'':>15s}")
        for name, lists, options in variants:
            print(f"{name:62s} {'':>15s} {self.fused(lists, **options):>15s}", flush=True)

    def run(self) -> None:
        vocabulary = np.arange(self.matrix.shape[0], dtype=np.float64)
        norms = np.linalg.norm(self.matrix, axis=1)

        def id_weights(k: int) -> Matrix:
            return np.asarray(np.minimum(1.0, np.log1p(vocabulary) / np.log1p(k)), dtype=np.float32)

        def titled(weight: float) -> Callable[[str, str], Matrix]:
            def embed(title: str, content: str) -> Matrix:
                v = weight * self.vector(title) + self.vector(content)
                return np.asarray(v / np.linalg.norm(v), dtype=np.float32)

            return embed

        def no_stop_words(text: str) -> str:
            kept = [w for w in text.split() if w.lower().strip("?,.!'\"") not in self.stop_words]
            return " ".join(kept) or text

        plain = self.scores()
        print("paraphrase recall@3, labelled / held out")
        print(f"{'method':62s} {'semantic':>15s} {'hybrid':>15s}")
        rows: list[tuple[str, dict[str, Matrix], dict[str, Any]]] = [
            ("whole-document mean, fusion depth 50", plain, {"depth": 50}),
            ("whole-document mean, fusion depth 20", plain, {"depth": 20}),
            ("whole-document mean, fusion depth 10 (the service)", plain, {}),
        ]
        rows += [
            (f"token weights: norm^{p}", self.scores(weights=(norms**p).astype(np.float32)), {}) for p in (-0.5, 0.5)
        ]
        rows += [
            (f"token weights: log(1 + id) / log(1 + {k})", self.scores(weights=id_weights(k)), {})
            for k in (1000, 3000, 10000)
        ]
        rows += [(f"title weighted {w} against the body", self.scores(document=titled(w)), {}) for w in (0.5, 1.0)]
        for mode in ("plain", "titled"):
            for alpha in (0.5, 0.7):
                rows.append(
                    (f"passages ({mode} sentences), alpha {alpha}", self.scores(passages=mode, alpha=alpha), {})
                )
        rows.append(
            (
                "passages (plain), alpha 0.7, id weights 1000",
                self.scores(passages="plain", alpha=0.7, weights=id_weights(1000)),
                {},
            )
        )
        rows.append(("pseudo-relevance feedback 0.3 x top 3", self.scores(feedback=0.3), {}))
        rows.append(("stop words removed from the query", self.scores(query_text=no_stop_words), {}))
        rows.append(("word-level late interaction + document cosine", self.late_interaction(), {}))
        rows += [(f"score fusion: cosine + {g} x coverage", plain, {"gamma": g}) for g in (0.1, 0.2, 0.3)]
        for name, s, fusion in rows:
            print(f"{name:62s} {self.semantic(s):>15s} {self.hybrid(s, **fusion):>15s}", flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
