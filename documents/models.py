"""Document (one uploaded PDF, unique by content), Chunk (one embedded piece of it), and ApiKey
(an application's access to the HTTP API)."""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.db import models
from pgvector.django import HnswIndex, VectorField

from documents.storage import document_upload_path

# Text search configuration of the chunks' full-text index (stemming for English; other
# languages still match on exact words).
TEXT_SEARCH_CONFIG = "english"
# The collection of a document uploaded without one.
DEFAULT_COLLECTION = "default"
COLLECTION_MAX_LENGTH = 64


class Document(models.Model):
    """A PDF and the state of its ingestion.

    Status transitions (all made by ``documents.services``)::

        QUEUED ──► PROCESSING ──► READY
          ▲            │   └────► FAILED
          └────────────┴──── reingest (from READY or FAILED, or a stuck QUEUED/PROCESSING)
    """

    class Status(models.TextChoices):
        """Where the document is in its ingestion."""

        QUEUED = "queued", "Queued"
        PROCESSING = "processing", "Processing"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    title = models.CharField(
        "title", max_length=255, help_text="Shown in lists and search results; from the file name."
    )
    file = models.FileField(
        "file",
        upload_to=document_upload_path,
        max_length=255,
        help_text="The stored PDF, named by its SHA-256 (never by the uploaded name).",
    )
    collection = models.SlugField(
        "collection",
        max_length=COLLECTION_MAX_LENGTH,
        default=DEFAULT_COLLECTION,
        help_text="Group the document belongs to (a slug): search and lists filter by it, and "
        "an API key may be limited to some collections.",
    )
    sha256 = models.CharField(
        "SHA-256",
        max_length=64,
        unique=True,
        help_text="Hash of the file's bytes: the same bytes are one document.",
    )
    size_bytes = models.BigIntegerField("size (bytes)", help_text="Size of the stored file.")
    status = models.CharField(
        "status",
        max_length=16,
        choices=Status.choices,
        default=Status.QUEUED,
        help_text="Ingestion state; see the transitions in the model's docstring.",
    )
    page_count = models.IntegerField(
        "pages", null=True, blank=True, help_text="Pages in the PDF, once it has been opened."
    )
    pages_done = models.PositiveIntegerField(
        "pages done",
        default=0,
        help_text="Pages embedded so far by the running (or last) ingestion: its progress.",
    )
    chunk_count = models.IntegerField(
        "chunks", default=0, help_text="Chunks in the current (searchable) set."
    )
    error_code = models.CharField(
        "error code",
        max_length=32,
        blank=True,
        help_text="Machine-readable reason of the last failure (not_pdf, encrypted, corrupt...).",
    )
    error_message = models.TextField(
        "error", blank=True, help_text="Readable reason of the last failure."
    )
    embedder = models.CharField(
        "embedder", max_length=200, blank=True, help_text="Model that embedded the current chunks."
    )
    timings = models.JSONField(
        "timings",
        default=dict,
        blank=True,
        help_text="Seconds per stage of the last successful ingestion (parse, embed, write...).",
    )
    attempts = models.IntegerField(
        "attempts",
        default=0,
        help_text="Times the latest ingestion started; reset when it is queued again.",
    )
    last_task_id = models.CharField(
        "last task id",
        max_length=255,
        blank=True,
        help_text="Celery task id of the latest ingestion (its TaskResult).",
    )
    created_at = models.DateTimeField("created", auto_now_add=True, help_text="Upload time.")
    updated_at = models.DateTimeField("updated", auto_now=True, help_text="Last change.")
    processing_started_at = models.DateTimeField(
        "processing started",
        null=True,
        blank=True,
        help_text="When a worker started the latest ingestion.",
    )
    heartbeat_at = models.DateTimeField(
        "heartbeat",
        null=True,
        blank=True,
        help_text="Last sign of life of the running ingestion (with its progress, and every "
        "few seconds): processing and silent for RAG_HEARTBEAT_STALE_SECONDS means stuck.",
    )
    ingested_at = models.DateTimeField(
        "ingested", null=True, blank=True, help_text="When the current chunks were written."
    )
    page_sources = models.JSONField(
        "page sources",
        default=dict,
        blank=True,
        help_text='Pages whose text came from each reader: {"pypdf": 10, "pdfium": 1, "ocr": 2} '
        "(pypdf's text layer, PDFium's for pages pypdf cannot read, or OCR).",
    )
    page_readers = models.JSONField(
        "page readers",
        default=dict,
        blank=True,
        help_text='Which pages each reader other than pypdf read: {"pdfium": "11", "ocr": '
        '"3-5,9"}; pypdf read the other pages with text.',
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["status", "updated_at"], name="document_status_updated_idx"),
            models.Index(fields=["collection", "created_at"], name="document_collection_idx"),
        ]

    def __str__(self) -> str:
        return self.title


class Chunk(models.Model):
    """A piece of a document's text with its embedding and the pages it spans."""

    document = models.ForeignKey(
        Document,
        on_delete=models.CASCADE,
        related_name="chunks",
        verbose_name="document",
        help_text="The document the text comes from.",
    )
    ordinal = models.IntegerField("ordinal", help_text="Position in the document, from 0.")
    page_start = models.IntegerField(
        "first page", help_text="Page where the text starts (1-based)."
    )
    page_end = models.IntegerField("last page", help_text="Page where the text ends (1-based).")
    text = models.TextField("text", help_text="The chunk's normalised text.")
    token_count = models.IntegerField("tokens", help_text="Length in the embedder's tokens.")
    ocr = models.BooleanField(
        "OCR", default=False, help_text="Whether any of the text was read by OCR from an image."
    )
    ocr_confidence = models.FloatField(
        "OCR confidence",
        null=True,
        blank=True,
        help_text="Mean Tesseract confidence (0-100) of the OCR'd words; empty without OCR.",
    )
    embedder = models.CharField(
        "embedder", max_length=200, help_text="Model that made the embedding."
    )
    search_vector = models.GeneratedField(
        expression=SearchVector("text", config=TEXT_SEARCH_CONFIG),
        output_field=SearchVectorField(),
        db_persist=True,
        verbose_name="search vector",
        help_text="Full-text index terms of the text (maintained by PostgreSQL).",
    )
    embedding = VectorField(
        "embedding",
        dimensions=settings.RAG_EMBEDDING_DIMENSIONS,
        help_text="Unit-length vector (cosine distance).",
    )

    class Meta:
        ordering = ["document", "ordinal"]
        constraints = [
            models.UniqueConstraint(
                fields=["document", "ordinal"], name="chunk_document_ordinal_unique"
            ),
        ]
        indexes = [
            GinIndex(fields=["search_vector"], name="chunk_search_vector_gin"),
            # ef_construction 200 (pgvector's default is 64): a better-connected graph finds
            # much more of the true top 10 at the default ef_search (bench/search.py; figures
            # in the README, "Performance", "Search at scale"), for about twice the build and
            # insert work.
            HnswIndex(
                name="chunk_embedding_hnsw",
                fields=["embedding"],
                m=16,
                ef_construction=200,
                opclasses=["vector_cosine_ops"],
            ),
        ]

    def __str__(self) -> str:
        return f"{self.document_id}#{self.ordinal} (p. {self.page_start}-{self.page_end})"


class ApiKey(models.Model):
    """An application's key to ``/api/v1``. Only the SHA-256 of the key is stored: the key
    itself is shown once, when created (``manage.py create_api_key``), and cannot be recovered.

    A key limited to collections sees only the documents in them; an empty list means all.
    A revoked key is refused at once (it is kept, so its history stays readable).
    """

    name = models.CharField("name", max_length=100, help_text="Who or what uses the key.")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="api_keys",
        verbose_name="owner",
        help_text="The user the key acts for.",
    )
    prefix = models.CharField(
        "prefix",
        max_length=16,
        unique=True,
        help_text="The key's first characters, to recognise it (not enough to use it).",
    )
    key_hash = models.CharField(
        "key hash",
        max_length=64,
        unique=True,
        help_text="SHA-256 of the whole key (hex): what a request's key is checked against.",
    )
    collections = ArrayField(
        models.SlugField(max_length=COLLECTION_MAX_LENGTH),
        default=list,
        blank=True,
        verbose_name="collections",
        help_text="Collections the key may see, separated by commas; empty for all.",
    )
    created_at = models.DateTimeField("created", auto_now_add=True, help_text="Creation time.")
    last_used_at = models.DateTimeField(
        "last used",
        null=True,
        blank=True,
        help_text="Last accepted request (updated at most once a minute).",
    )
    revoked_at = models.DateTimeField(
        "revoked", null=True, blank=True, help_text="When the key was revoked; empty if active."
    )

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"
        verbose_name_plural = "API keys"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def allows_collection(self, collection: str) -> bool:
        """Whether a document in ``collection`` exists for this key."""
        return not self.collections or collection in self.collections
