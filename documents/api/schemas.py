"""The API's request and response bodies. Requests forbid unknown fields: a misspelt filter is
an error, never a search that silently ignores it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from ninja import Schema
from pydantic import ConfigDict, Field, StringConstraints, field_validator

from documents.models import COLLECTION_MAX_LENGTH, Document

SEARCH_MODE = Literal["hybrid", "vector", "text"]
STATUS = Literal["queued", "processing", "ready", "failed"]
MAX_K = 50
MAX_QUERY_CHARS = 2000
# PostgreSQL's bigint: a larger id matches nothing and must not reach the database.
MAX_ID = 2**63 - 1

Slug = Annotated[
    str,
    StringConstraints(pattern=r"^[-a-zA-Z0-9_]+$", min_length=1, max_length=COLLECTION_MAX_LENGTH),
]
DocumentId = Annotated[int, Field(ge=1, le=MAX_ID)]


def no_nul(value: str | None) -> str | None:
    """PostgreSQL text cannot hold NUL: refuse it here, as bad input."""
    if value is not None and "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def aware(value: datetime | None) -> datetime | None:
    """A time without a zone is read as UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


class Strict(Schema):
    model_config = ConfigDict(extra="forbid")


class SearchFiltersIn(Strict):
    """Each given condition must hold; a key limited to collections adds its own."""

    collections: list[Slug] | None = Field(None, max_length=100)
    document_ids: list[DocumentId] | None = Field(None, max_length=1000)
    created_after: datetime | None = None
    created_before: datetime | None = None

    _aware = field_validator("created_after", "created_before")(aware)


class SearchIn(Strict):
    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS)
    k: int = Field(10, ge=1, le=MAX_K)
    mode: SEARCH_MODE = "hybrid"
    filters: SearchFiltersIn = Field(default_factory=SearchFiltersIn)

    _no_nul = field_validator("query")(no_nul)


class HitOut(Schema):
    document_id: int
    title: str
    collection: str
    page_start: int
    page_end: int
    text: str = Field(
        description="The chunk's text; a long one is cut to its start, saying how much is left "
        "out (the whole length is text_chars)."
    )
    text_chars: int = Field(description="Characters in the chunk's whole text.")
    score: float
    chunk_id: int
    ocr: bool = Field(description="Some of the text was read by OCR (it may hold errors).")
    ocr_confidence: float | None = Field(
        None, description="Mean OCR confidence (0-100) of the chunk's OCR'd words."
    )


class SearchOut(Schema):
    hits: list[HitOut]


class DocumentOut(Schema):
    id: int
    title: str
    collection: str
    status: STATUS
    sha256: str
    size_bytes: int
    page_count: int | None
    pages_done: int
    chunk_count: int
    error_code: str
    error_message: str
    embedder: str
    timings: dict
    created_at: datetime
    updated_at: datetime
    processing_started_at: datetime | None
    ingested_at: datetime | None

    @staticmethod
    def of(document: Document) -> dict:
        return {name: getattr(document, name) for name in DocumentOut.model_fields}


class UploadOut(DocumentOut):
    duplicate: bool
    verdict: str
    reason: str


class ReingestOut(DocumentOut):
    queued: bool


class DocumentListOut(Schema):
    count: int
    limit: int
    offset: int
    items: list[DocumentOut]


class ErrorOut(Schema):
    detail: str | list
