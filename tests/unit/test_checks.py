"""The embedder/column dimension rule: one rule and one sentence for the system check, the
worker's start-up check and the service's check before each ingestion."""

from __future__ import annotations

import io

import pytest

from devtools.pdf_factory import text_pdf
from documents.checks import embedder_mismatch_errors
from documents.ingestion import rag_config
from documents.models import Document
from rag.errors import EmbedderMismatchError
from rag.service import service_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_embedder_that_fits_the_column_passes_the_check():
    assert embedder_mismatch_errors() == []


def test_the_check_and_the_service_refuse_a_mismatch_with_the_same_sentence(rag_bridge, settings):
    settings.RAG_EMBEDDING_DIMENSIONS = 64  # the hash embedder follows it; the column holds 384
    errors = embedder_mismatch_errors()
    assert [error.id for error in errors] == ["documents.E004"]

    document = Document.objects.create(title="d", sha256="1" * 64, size_bytes=1, file="x/d.pdf")

    async def ingest():
        await service_for(rag_config()).ingest_pdf(
            document_id=document.pk, stream=io.BytesIO(text_pdf("Nothing is read."))
        )

    with pytest.raises(EmbedderMismatchError) as refused:
        rag_bridge.run(ingest())
    assert errors[0].msg == str(refused.value)
    assert "hash-64 makes 64-dimensional vectors" in errors[0].msg
    assert "holds 384" in errors[0].msg


def test_an_ocr_mode_that_does_not_exist_is_a_check_error(settings):
    from documents.checks import ocr_mode_valid
    from documents.ingestion import ocr_problem

    assert ocr_mode_valid() == []
    settings.RAG_OCR = "sometimes"
    (error,) = ocr_mode_valid()
    assert error.id == "documents.E006"
    assert error.msg == "RAG_OCR='sometimes': expected one of auto, force, off."
    assert ocr_problem() == error.msg  # the worker's start-up check says the same


def test_ocr_off_needs_no_language(settings):
    from documents.ingestion import ocr_problem

    settings.RAG_OCR, settings.RAG_OCR_LANGUAGES = "off", "xyz"
    assert ocr_problem() is None
    settings.RAG_OCR = "auto"
    assert "tesseract-ocr-xyz" in ocr_problem()
