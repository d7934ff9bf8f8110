"""Parsing real PDFs: text comes out page by page; every kind of bad file gets a typed error."""

from __future__ import annotations

import io

import pytest

from rag.errors import CorruptPdfError, EncryptedPdfError, NotAPdfError, NoTextError, TooLargeError
from rag.parsing import PdfDocument, add_page, normalize_text


def open_corpus(corpus, name: str, *, max_pages: int = 5000) -> PdfDocument:
    return PdfDocument(io.BytesIO(corpus[name].path.read_bytes()), max_pages=max_pages)


@pytest.mark.parametrize(
    "name",
    [
        "text-pdflatex-4pages.pdf",
        "text-libreoffice-writer-1page.pdf",
        "encrypted-empty-password-dmca-18pages.pdf",
        "encrypted-empty-password-aes256.pdf",
        "cjk-chinese-report-22pages.pdf",
    ],
)
def test_readable_pdfs_yield_every_page_with_text(corpus, name):
    pdf = open_corpus(corpus, name)
    pages = list(pdf.pages())
    assert pdf.page_count == corpus[name].page_count
    assert [p.number for p in pages] == list(range(1, pdf.page_count + 1))
    assert sum(len(p.text) for p in pages) > 0
    assert pdf.stats.failed_pages == []


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("encrypted-needs-password-libreoffice.pdf", EncryptedPdfError),
        ("encrypted-needs-password-example.pdf", EncryptedPdfError),
        ("encrypted-odd-pypdf-needs-password.pdf", EncryptedPdfError),
        ("broken-empty-0bytes.pdf", CorruptPdfError),
        ("broken-fuzzed-trailer.pdf", CorruptPdfError),
        ("broken-cyclic-page-tree.pdf", CorruptPdfError),
        ("broken-no-startxref-recoverable.pdf", CorruptPdfError),
        ("broken-pages-object-poppler-reads-4pages.pdf", CorruptPdfError),
        ("broken-limit-reached-3pages.pdf", CorruptPdfError),
        ("broken-encrypt-rc4-keysize-valueerror.pdf", (CorruptPdfError, EncryptedPdfError)),
    ],
)
def test_unopenable_pdfs_raise_a_typed_readable_error(corpus, name, error):
    with pytest.raises(error) as caught:
        open_corpus(corpus, name)
    assert len(caught.value.message) > 15


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("scanned-image-only-3pages.pdf", NoTextError),
        ("notext-vector-only-2pages.pdf", NoTextError),
        ("blank-3pages-with-javascript.pdf", NoTextError),
        ("broken-page-streams-16pages.pdf", CorruptPdfError),
        ("broken-a85-filter-deprecationerror.pdf", CorruptPdfError),
        ("odd-jbig2-bomb-content-stream.pdf", CorruptPdfError),
    ],
)
def test_pdfs_without_readable_text_explain_why(corpus, name, error):
    pdf = open_corpus(corpus, name)
    assert not any(page.text for page in pdf.pages())
    assert isinstance(pdf.no_text_error(), error)


def test_bytes_that_are_not_a_pdf_are_refused_before_parsing():
    with pytest.raises(NotAPdfError):
        PdfDocument(io.BytesIO(b"<html>hello</html>" * 10), max_pages=10)


def test_page_limit_is_enforced(corpus):
    with pytest.raises(TooLargeError, match="352 pages"):
        open_corpus(corpus, "long-freeculture-book-352pages.pdf", max_pages=100)


def test_normalisation_joins_hyphenated_words_and_keeps_every_word():
    raw = "An exam-\nple of ﬁne text\x00 from 2019-\n2020,\n\n  by Jean-\nPierre."
    assert normalize_text(raw) == "An example of fine text from 2019- 2020, by Jean- Pierre."


@pytest.mark.parametrize(
    "name",
    [
        "long-geotopo-german-117pages.pdf",  # object streams, shared fonts
        "encrypted-empty-password-dmca-18pages.pdf",  # objects decrypted as they are parsed
        "broken-page-streams-16pages.pdf",  # some pages fail
    ],
)
def test_forgetting_parsed_objects_changes_no_text(corpus, name, monkeypatch):
    import rag.parsing

    def read(every: int) -> tuple[list[str], list[int], int]:
        monkeypatch.setattr(rag.parsing, "FORGET_PARSED_EVERY_PAGES", every)
        with corpus[name].path.open("rb") as fh:
            pdf = PdfDocument(fh, max_pages=1000)
            texts = [page.text for page in pdf.pages()]
            return texts, pdf.stats.failed_pages, len(pdf._reader.resolved_objects)

    kept_texts, kept_failures, kept_objects = read(10**9)
    texts, failures, objects = read(1)
    assert texts == kept_texts
    assert any(texts) or failures  # something was read, or failed, on each file
    assert failures == kept_failures
    assert objects < kept_objects  # the cache really was emptied as pages went by


def test_pages_read_in_order_make_compact_ranges():
    ranges = ""
    steps = []
    for number in (3, 4, 5, 9, 11, 12, 20):
        ranges = add_page(ranges, number)
        steps.append(ranges)
    assert steps == ["3", "3-4", "3-5", "3-5,9", "3-5,9,11", "3-5,9,11-12", "3-5,9,11-12,20"]
    assert add_page("", 1) == "1"
    assert add_page("7-9", 10) == "7-10"
    assert add_page("1,7", 8) == "1,7-8"
