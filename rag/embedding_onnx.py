"""The local model on ONNX Runtime: the same all-MiniLM-L6-v2 weights, about twice as fast.

The model is exported from the installed sentence-transformers folder to ONNX once, on this
machine (no hub download), into a cache folder; every process then runs it with onnxruntime.
Mean pooling and normalisation are those of the sentence-transformers pipeline, so the vectors
agree with the torch ones (cosine 1.000 over the corpus chunks; see tests and bench/ingest.py)
and documents need no re-embedding when the runtime changes: the embedder keeps its name.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from rag.config import EmbedderConfig
from rag.embedding import LocalEmbedder

logger = logging.getLogger(__name__)

ONNX_OPSET = 17
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


@contextmanager
def built_once(target: Path) -> Iterator[Path | None]:
    """Build ``target`` once per machine, however many processes start at once.

    Under a file lock beside it: yields None when ``target`` already exists (another process
    built it), else a temporary path for the caller to write, renamed into place when the block
    ends without an error.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    with (target.parent / (target.name + ".lock")).open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.exists():
            yield None
            return
        partial = target.with_suffix(f".{os.getpid()}.tmp")
        yield partial
        os.replace(partial, target)


def export_onnx(model_path: Path, target: Path) -> Path:
    """Export the transformer of a sentence-transformers folder to ONNX (dynamic batch/length),
    once per machine (:func:`built_once`)."""
    with built_once(target) as partial:
        if partial is None:
            return target
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        import torch
        from transformers import AutoModel

        model = AutoModel.from_pretrained(str(model_path)).eval()

        class HiddenStates(torch.nn.Module):
            def __init__(self, inner: Any) -> None:
                super().__init__()
                self.inner = inner

            def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
                return self.inner(
                    input_ids=input_ids,
                    attention_mask=attention_mask,
                    token_type_ids=token_type_ids,
                ).last_hidden_state

        dummy = torch.ones((2, 8), dtype=torch.int64)
        axes = {name: {0: "batch", 1: "tokens"} for name in (*INPUTS, "last_hidden_state")}
        with warnings.catch_warnings():
            # The tracer's notes on BERT's Python-level shape checks: constant for an encoder.
            warnings.simplefilter("ignore")
            _export(torch, HiddenStates(model), dummy, axes, partial)
        logger.info("exported %s to ONNX at %s", model_path, target)
    return target


def _export(torch: Any, module: Any, dummy: Any, axes: dict, path: Path) -> None:
    torch.onnx.export(
        module,
        (dummy, dummy, torch.zeros_like(dummy)),
        str(path),
        input_names=list(INPUTS),
        output_names=["last_hidden_state"],
        dynamic_axes=axes,
        opset_version=ONNX_OPSET,
        dynamo=False,
    )


class OnnxEmbedder(LocalEmbedder):
    """all-MiniLM-L6-v2 (or another sentence-transformers folder) on ONNX Runtime."""

    runtime = "onnx"

    def __init__(self, config: EmbedderConfig) -> None:
        super().__init__(config, lanes=True)
        cache = Path(config.onnx_cache_dir) if config.onnx_cache_dir else self.model_path
        self.onnx_path = cache / f"{self.model_path.name}-opset{ONNX_OPSET}.onnx"
        self._session: Any = None
        self._batch_tokenizer: Any = None
        self._onnx_lock = threading.Lock()

    def _load(self) -> Any:
        with self._onnx_lock:
            if self._session is None:
                import onnxruntime
                from tokenizers import Tokenizer

                model_file = self._model_file()
                options = onnxruntime.SessionOptions()
                # Parallel in lanes (see LocalEmbedder): each run single-threaded, no spinning
                # threads taking the CPU from the other lanes.
                options.intra_op_num_threads = 1
                options.inter_op_num_threads = 1
                options.add_session_config_entry("session.intra_op.allow_spinning", "0")
                options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
                self._session = onnxruntime.InferenceSession(
                    str(model_file), options, providers=["CPUExecutionProvider"]
                )
                tokenizer = Tokenizer.from_file(str(self.model_path / "tokenizer.json"))
                tokenizer.enable_truncation(self.max_seq_length)
                tokenizer.enable_padding()
                self._batch_tokenizer = tokenizer
                logger.info(
                    "embedder=%s loaded runtime=%s from %s", self.name, self.runtime, model_file
                )
            return self._session

    def _model_file(self) -> Path:
        """The ONNX file to run, made on first use (the export of the model folder)."""
        return export_onnx(self.model_path, self.onnx_path)

    def _encode(self, texts: Sequence[str]) -> list[list[float]]:
        session = self._load()
        vectors: list[list[float]] = []
        for start in range(0, len(texts), max(1, self.batch_size)):
            encodings = self._batch_tokenizer.encode_batch(
                list(texts[start : start + self.batch_size])
            )
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            types = np.array([e.type_ids for e in encodings], dtype=np.int64)
            (hidden,) = session.run(
                None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
            )
            # Mean pooling over real tokens, then unit length: sentence-transformers' pipeline.
            weights = mask[..., None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
            pooled /= np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
            vectors.extend(pooled.tolist())
        return vectors
