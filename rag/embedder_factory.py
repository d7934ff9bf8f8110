"""The embedder for a configuration: which class, which runtime, built once per process.

A module of its own so that the embedder modules never import each other in a circle
(``rag.embedding_onnx`` builds on ``rag.embedding.LocalEmbedder``).
"""

from __future__ import annotations

from functools import lru_cache

from rag.config import EmbedderConfig
from rag.embedding import Embedder, HashEmbedder, LocalEmbedder, resolve_local_runtime


@lru_cache(maxsize=4)
def get_embedder(config: EmbedderConfig) -> Embedder:
    """The embedder for ``config``, built once per process (a model is loaded only once)."""
    if config.kind == "local":
        runtime = resolve_local_runtime(config.local_runtime)
        if runtime == "onnx":
            # Imported only when chosen: onnxruntime (and httpx below) load where they are used.
            from rag.embedding_onnx import OnnxEmbedder

            return OnnxEmbedder(config)
        if runtime == "int8":
            from rag.embedding_int8 import Int8Embedder

            return Int8Embedder(config)
        if runtime == "torch-bf16":
            return LocalEmbedder(config, bfloat16=True, lanes=True)
        return LocalEmbedder(config)
    if config.kind == "hash":
        return HashEmbedder(config)
    if config.kind == "openai":
        from rag.embedding_openai import OpenAIEmbedder

        return OpenAIEmbedder(config)
    raise ValueError(
        f"Unknown embedder {config.kind!r}: use 'local', 'openai' or 'hash' (RAG_EMBEDDER)."
    )
