"""Where a document's text came from is shown: pages per reader on the document and chunks
pages, "OCR" with its confidence on chunks and search hits, and a "has OCR pages" filter."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.urls import reverse

from documents import presenters
from documents.models import Chunk, Document

pytestmark = pytest.mark.django_db(transaction=True)


def make_document(
    title: str, sha: str, page_sources: dict, *, ocr: bool, page_readers: dict | None = None
) -> Document:
    document = Document.objects.create(
        title=title,
        sha256=sha * 64,
        size_bytes=1,
        file=f"x/{title}.pdf",
        status=Document.Status.READY,
        page_count=2,
        chunk_count=1,
        page_sources=page_sources,
        page_readers=page_readers or {},
    )
    Chunk.objects.create(
        document=document,
        ordinal=0,
        page_start=1,
        page_end=1,
        text=f"The wharfinger ledger of {title}.",
        token_count=8,
        embedder="hash-384",
        embedding=[0.0] * 383 + [1.0],
        ocr=ocr,
        ocr_confidence=87.4 if ocr else None,
    )
    return document


@pytest.fixture
def scanned() -> Document:
    return make_document(
        "scanned", "a", {"ocr": 1, "pypdf": 1}, ocr=True, page_readers={"ocr": "2"}
    )


@pytest.fixture
def typed() -> Document:
    return make_document("typed", "b", {"pypdf": 2}, ocr=False)


def test_labels_name_the_reader_and_the_confidence():
    assert presenters.ocr_label(True, 87.4) == "OCR (confidence 87)"
    assert presenters.ocr_label(True, None) == "OCR"
    assert presenters.ocr_label(False, None) == ""
    assert presenters.page_sources_label({"pypdf": 3, "ocr": 2, "pdfium": 0}) == (
        "OCR 2, text layer (pypdf) 3"
    )
    assert presenters.page_sources_label({}) == "–"
    counts, readers = {"pypdf": 10, "pdfium": 1, "ocr": 4}, {"pdfium": "11", "ocr": "3-5,9"}
    assert presenters.page_sources_label(counts, readers) == (
        "OCR 4 (pages 3–5, 9), text layer (PDFium) 1 (page 11), text layer (pypdf) 10"
    )


def test_the_has_ocr_pages_filter_lists_only_documents_with_ocr_pages(staff_client, scanned, typed):
    url = reverse("admin:documents_document_changelist")
    with_ocr = staff_client.get(url + "?ocr=yes").content.decode()
    without = staff_client.get(url + "?ocr=no").content.decode()
    assert ">scanned<" in with_ocr and ">typed<" not in with_ocr
    assert ">typed<" in without and ">scanned<" not in without


def test_document_and_chunks_pages_show_the_sources(staff_client, scanned):
    document_page = staff_client.get(
        reverse("admin:documents_document_change", args=[scanned.pk])
    ).content.decode()
    assert "OCR 1 (page 2), text layer (pypdf) 1" in document_page
    assert "OCR (confidence 87)" in document_page  # the chunk preview
    chunks_page = staff_client.get(
        reverse("admin:documents_document_chunks", args=[scanned.pk])
    ).content.decode()
    assert "OCR 1 (page 2), text layer (pypdf) 1" in chunks_page
    assert "OCR (confidence 87)" in chunks_page
    chunk_list = staff_client.get(reverse("admin:documents_chunk_changelist") + "?ocr__exact=1")
    assert "OCR (confidence 87)" in chunk_list.content.decode()


def test_search_hits_say_ocr(staff_client, scanned, typed, settings):
    settings.RAG_EMBEDDER = "hash"
    page = staff_client.get(
        reverse("admin:documents_document_search"), {"q": "wharfinger", "mode": "text", "k": 5}
    ).content.decode()
    assert page.count('class="fca-hit-ocr"') == 1
    out = io.StringIO()
    call_command("search", "wharfinger", "--mode", "text", stdout=out)
    lines = [line for line in out.getvalue().splitlines() if "[document" in line]
    assert [line.endswith("OCR (confidence 87)") for line in lines].count(True) == 1
    assert len(lines) == 2
