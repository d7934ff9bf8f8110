"""Search over the chunks: vector, full-text and hybrid, with citations, on the real database."""

from __future__ import annotations

import inspect
import io
import json

import pytest
from django.core.management import call_command
from django.urls import reverse

from devtools import pdf_factory
from documents import ingestion
from documents.highlight import highlight
from documents.ingestion import rag_config
from documents.models import Document
from rag.search import SearchFilters, SearchHit, reciprocal_rank_fusion
from rag.service import RAGService, service_for

pytestmark = pytest.mark.django_db(transaction=True)

TEXTS = {
    "whales": "Blue whales are the largest animals ever known; they feed on krill in cold oceans.",
    "tax": "The income tax return is due in April; deductions lower the taxable income.",
    "pdf": "Portable Document Format files keep text, fonts and images in one container.",
}


@pytest.fixture
def indexed(rag_bridge):
    ids = {}
    for index, (key, text) in enumerate(TEXTS.items()):
        document = Document.objects.create(
            title=f"{key} guide", sha256=f"{index:064d}", size_bytes=1, file=f"x/{index}.pdf"
        )

        rag_bridge.run(service_for_ingest(document.pk, pdf_factory.text_pdf(text)))
        ids[key] = document.pk
    return ids


async def service_for_ingest(document_id: int, data: bytes) -> None:
    await service_for(rag_config()).ingest_pdf(document_id=document_id, stream=io.BytesIO(data))


def search(rag_bridge, query, **options):
    async def run():
        return await service_for(rag_config()).search(query, **options)

    return rag_bridge.run(run())


@pytest.mark.parametrize("mode", ["vector", "text", "hybrid"])
def test_each_mode_finds_the_document_that_answers(rag_bridge, indexed, mode):
    hits = search(rag_bridge, "income tax deductions", k=3, mode=mode)
    assert hits[0].document_id == indexed["tax"]
    assert hits[0].title == "tax guide"
    assert (hits[0].page_start, hits[0].page_end) == (1, 1)
    assert "income tax" in hits[0].text
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_full_text_matches_stemmed_words_and_needs_no_exact_phrase(rag_bridge, indexed):
    hits = search(rag_bridge, "whale feeding oceans zebra", k=3, mode="text")
    assert [h.document_id for h in hits] == [indexed["whales"]]


def test_search_can_be_limited_to_documents(rag_bridge, indexed):
    only_pdf = SearchFilters(document_ids=[indexed["pdf"]])
    hits = search(rag_bridge, "income tax", k=3, mode="hybrid", filters=only_pdf)
    assert {h.document_id for h in hits} == {indexed["pdf"]}


def test_documents_are_chosen_by_filters_alone():
    """One way to limit a search, from the service up to the Django side's entry points."""
    for function in (RAGService.search, ingestion.search, ingestion.search_async):
        parameters = inspect.signature(function).parameters
        assert "filters" in parameters and "document_ids" not in parameters, function


def test_search_command_limits_hits_to_the_given_documents(indexed):
    out = io.StringIO()
    call_command(
        "search", "income tax", "-k", "3", "--document", str(indexed["pdf"]), "--json", stdout=out
    )
    assert {hit["document_id"] for hit in json.loads(out.getvalue())} == {indexed["pdf"]}


def test_empty_queries_and_unknown_modes(rag_bridge, indexed):
    assert search(rag_bridge, "   ", k=3) == []
    with pytest.raises(ValueError, match="Unknown search mode"):
        search(rag_bridge, "tax", mode="fuzzy")


def test_reciprocal_rank_fusion_rewards_agreement():
    def hit(chunk_id):
        return SearchHit(chunk_id, 1, "t", 1, 1, 0.0, "x")

    fused = reciprocal_rank_fusion([[hit(1), hit(2), hit(3)], [hit(3), hit(2), hit(4)]], k=3)
    # Found by both rankings beats first place in one: 1/61 + 1/63 > 2/62 > 1/61.
    assert [h.chunk_id for h in fused] == [3, 2, 1]
    assert fused[0].score == pytest.approx(1 / 61 + 1 / 63)
    assert fused[1].score == pytest.approx(2 / 62)


def test_search_command_prints_hits_as_json(indexed):
    out = io.StringIO()
    call_command("search", "largest animals krill", "-k", "2", "--json", stdout=out)
    hits = json.loads(out.getvalue())
    assert hits[0]["document_id"] == indexed["whales"]
    assert set(hits[0]) >= {"title", "page_start", "page_end", "score", "text"}


def test_admin_search_page_links_hits_and_highlights_terms(staff_client, indexed):
    response = staff_client.get(
        reverse("admin:documents_document_search"), {"q": "portable fonts", "mode": "hybrid"}
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert reverse("admin:documents_document_change", args=[indexed["pdf"]]) in html
    assert "<mark>Portable</mark>" in html and "<mark>fonts</mark>" in html
    assert "p. 1" in html
    index = staff_client.get(reverse("admin:index")).content.decode()
    assert reverse("admin:documents_document_search") in index


def test_highlight_escapes_html_and_marks_word_starts():
    snippet = highlight("<b>Ingestion</b> of PDFs & more", "ingest pdf")
    assert "<mark>Ingestion</mark>" in snippet
    assert "<mark>PDFs</mark>" in snippet
    assert "&lt;b&gt;" in snippet and "&amp;" in snippet


def test_fusion_weights_make_a_list_count_more():
    def hit(chunk_id):
        return SearchHit(chunk_id, 1, "t", 1, 1, 0.0, "x")

    fused = reciprocal_rank_fusion([[hit(1)], [hit(2)]], k=2, weights=[1.0, 2.0])
    assert [h.chunk_id for h in fused] == [2, 1]
    assert fused[0].score == pytest.approx(2 / 61)


def test_full_text_puts_chunks_with_every_word_first(rag_bridge, indexed):
    # "income" alone is in one text, "tax april" in the same; "oceans" elsewhere.
    hits = search(rag_bridge, "income tax april", k=3, mode="text")
    assert hits[0].document_id == indexed["tax"]
    assert len(hits) == 1  # only one chunk holds any of these words
