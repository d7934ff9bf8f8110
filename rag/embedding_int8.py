"""The local model in int8 on ONNX Runtime: static quantisation, calibrated once per machine.

Opt-in (``RAG_LOCAL_RUNTIME=int8``), never what ``auto`` picks: measured against the default
runtimes (README, Performance), it was not the 1.3x faster that would justify vectors that
differ from the reference's.

How the model is quantised, and why so (each step measured on corpus chunks against the
float32 reference, see bench/ingest.py):

- Static, not dynamic: activations get fixed scales from a calibration pass, so no operator
  spends time finding a batch's range at run time (dynamic int8 was slower than float32).
- Only the matrix products with weights, in int8 with per-channel weight scales (u8 x s8, what
  AVX-512 VNNI and AVX2 multiply fastest); the attention's activation x activation products,
  softmax and layer norms stay float32. Quantising every MatMul gave cosine 0.93 to the
  reference.
- The feed-forward's down-projection (intermediate -> hidden, the product whose input comes
  from GELU) stays float32: its inputs have a few large outliers that a u8 scale cannot hold
  next to the small values (with it in int8: mean cosine 0.930, minimum 0.78; without: 0.996
  and 0.986).
- Calibration texts: :data:`CALIBRATION_FILE`, paragraphs of English technical prose shipped
  with the package, so every machine builds the same model without reading any user's data.

The quantised file is built from the float32 export (``rag.embedding_onnx``) under the same
file lock, once per machine, into the same cache folder.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from rag.config import EmbedderConfig
from rag.embedding_onnx import INPUTS, OnnxEmbedder, built_once, export_onnx

logger = logging.getLogger(__name__)

CALIBRATION_FILE = Path(__file__).with_name("int8_calibration.txt")
# Texts per calibration batch (each cut at the model's input limit).
CALIBRATION_BATCH = 16
# Bump when the recipe changes. The file name carries it, with a digest of the calibration texts
# and onnxruntime's version, so a model built otherwise is never taken from the cache.
RECIPE_VERSION = 1


def calibration_texts(path: Path = CALIBRATION_FILE) -> list[str]:
    """The calibration paragraphs, one a line."""
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def recipe_tag() -> str:
    """What the int8 file is built from: the recipe's version, the calibration texts (a digest)
    and the quantiser (onnxruntime's version)."""
    from importlib.metadata import version

    digest = hashlib.sha256(CALIBRATION_FILE.read_bytes()).hexdigest()[:12]
    return f"r{RECIPE_VERSION}-{digest}-ort{version('onnxruntime')}"


def float_matmuls_to_keep(model: Any) -> list[str]:
    """Names of the MatMul nodes of an ONNX BERT graph that stay float32: those without a weight
    (attention scores and context), and the down-projections (a weight with more rows than
    columns: intermediate -> hidden)."""
    weights = {init.name: tuple(init.dims) for init in model.graph.initializer}
    keep = []
    for node in model.graph.node:
        if node.op_type != "MatMul":
            continue
        shapes = [weights[name] for name in node.input if name in weights]
        if not shapes or (len(shapes[0]) == 2 and shapes[0][0] > shapes[0][1]):
            keep.append(node.name)
    return keep


def quantize_int8(float_model: Path, target: Path, tokenizer_file: Path, max_length: int) -> Path:
    """Build the int8 model at ``target`` from the float32 ONNX model (see the module docstring).

    Once per machine, however many processes start at once (:func:`built_once`).
    """
    with built_once(target) as partial:
        if partial is None:
            return target
        import onnx
        from onnxruntime.quantization import (
            CalibrationDataReader,
            CalibrationMethod,
            QuantFormat,
            QuantType,
            quant_pre_process,
            quantize_static,
        )
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(tokenizer_file))
        tokenizer.enable_truncation(max_length)
        tokenizer.enable_padding()

        def batches() -> Iterator[dict[str, np.ndarray]]:
            texts = calibration_texts()
            for start in range(0, len(texts), CALIBRATION_BATCH):
                encodings = tokenizer.encode_batch(texts[start : start + CALIBRATION_BATCH])
                ids = np.array([e.ids for e in encodings], dtype=np.int64)
                mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
                yield dict(zip(INPUTS, (ids, mask, np.zeros_like(ids)), strict=True))

        class Reader(CalibrationDataReader):
            def __init__(self) -> None:
                self._batches = batches()

            def get_next(self) -> dict[str, np.ndarray] | None:
                return next(self._batches, None)

        # Working files (about 90 MB) in the system's temporary folder, where a killed build
        # leaves nothing in the cache; only the result is written beside its target.
        with tempfile.TemporaryDirectory() as work:
            prepared = Path(work) / "prepared.onnx"
            # Graph clean-up and shape inference first, as onnxruntime advises before static
            # quantisation (symbolic inference cannot follow the dynamic axes of this export).
            quant_pre_process(str(float_model), str(prepared), skip_symbolic_shape=True)
            quantize_static(
                str(prepared),
                str(partial),
                Reader(),
                quant_format=QuantFormat.QOperator,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                per_channel=True,
                op_types_to_quantize=["MatMul"],
                nodes_to_exclude=float_matmuls_to_keep(onnx.load(str(prepared))),
                calibrate_method=CalibrationMethod.MinMax,
                extra_options={"WeightSymmetric": True, "ActivationSymmetric": False},
            )
        logger.info("quantised %s to int8 at %s", float_model, target)
    return target


class Int8Embedder(OnnxEmbedder):
    """all-MiniLM-L6-v2 with its weight products in int8, on ONNX Runtime (opt-in)."""

    runtime = "int8"

    def __init__(self, config: EmbedderConfig) -> None:
        super().__init__(config)
        self.float_onnx_path = self.onnx_path
        self.onnx_path = self.onnx_path.with_name(
            f"{self.float_onnx_path.stem}-int8-{recipe_tag()}.onnx"
        )

    def _model_file(self) -> Path:
        export_onnx(self.model_path, self.float_onnx_path)
        return quantize_int8(
            self.float_onnx_path,
            self.onnx_path,
            self.model_path / "tokenizer.json",
            self.max_seq_length,
        )
