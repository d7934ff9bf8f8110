"""No page and no command shows more than an excerpt of a chunk, however long it is (chunks
written before the character cap, or under a larger one, may hold megabytes)."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.urls import reverse

from documents.highlight import CHUNK_TEXT_CHARS, excerpt
from documents.ingestion import rag_config
from documents.models import Chunk, Document
from rag.service import service_for

pytestmark = pytest.mark.django_db(transaction=True)

# 2 MB of text: "krill" first (so full-text search finds it), then words of 1,000 letters.
HUGE = "Whales eat krill. " + " ".join(["A" * 1000] * 2000)
# What a page may weigh beside the excerpt (the admin's own markup).
PAGE_ALLOWANCE = 60_000


@pytest.fixture
def huge_chunk() -> Chunk:
    document = Document.objects.create(
        title="huge",
        sha256="f" * 64,
        size_bytes=1,
        file="x/huge.pdf",
        status=Document.Status.READY,
        page_count=1,
        chunk_count=1,
    )
    return Chunk.objects.create(
        document=document,
        ordinal=0,
        page_start=1,
        page_end=1,
        text=HUGE,
        token_count=2003,
        embedder="hash-384",
        embedding=[0.0] * 383 + [1.0],
    )


def test_an_excerpt_says_how_much_it_leaves_out():
    assert excerpt("short") == "short"
    cut = excerpt("x" * 12, 5)
    assert cut == "xxxxx… (7 more characters)"
    assert excerpt("x" * 5, 5, total=12) == cut


@pytest.mark.parametrize(
    "page",
    ["chunks", "chunks_with_words", "document", "chunk_change", "chunk_list"],
)
def test_admin_pages_show_an_excerpt_of_a_huge_chunk(staff_client, huge_chunk, page):
    document_id = huge_chunk.document_id
    url, params = {
        "chunks": (reverse("admin:documents_document_chunks", args=[document_id]), {}),
        "chunks_with_words": (
            reverse("admin:documents_document_chunks", args=[document_id]),
            {"q": "krill"},
        ),
        "document": (reverse("admin:documents_document_change", args=[document_id]), {}),
        "chunk_change": (reverse("admin:documents_chunk_change", args=[huge_chunk.pk]), {}),
        "chunk_list": (reverse("admin:documents_chunk_changelist"), {}),
    }[page]
    response = staff_client.get(url, params)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Whales eat" in html
    assert len(html) < CHUNK_TEXT_CHARS + PAGE_ALLOWANCE, len(html)
    assert html.count("A" * 1000) <= CHUNK_TEXT_CHARS // 1000
    if page.startswith("chunk") and page != "chunk_list":
        assert f"({len(HUGE) - CHUNK_TEXT_CHARS:,} more characters)" in html


def test_the_admin_search_page_shows_an_excerpt_of_a_huge_hit(staff_client, huge_chunk, rag_bridge):
    response = staff_client.get(
        reverse("admin:documents_document_search"), {"q": "krill", "mode": "text"}
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "<mark>krill</mark>" in html
    assert len(html) < CHUNK_TEXT_CHARS + PAGE_ALLOWANCE, len(html)


@pytest.mark.parametrize("as_json", [False, True])
def test_the_search_command_prints_an_excerpt_of_a_huge_hit(huge_chunk, rag_bridge, as_json):
    out = io.StringIO()
    call_command("search", "krill", "--mode", "text", *(["--json"] if as_json else []), stdout=out)
    printed = out.getvalue()
    assert "Whales eat krill" in printed
    assert len(printed) < CHUNK_TEXT_CHARS + 2_000, len(printed)
    if as_json:
        (hit,) = json.loads(printed)
        assert hit["text_chars"] == len(HUGE)
        assert hit["text"] == excerpt(HUGE)


@pytest.mark.parametrize("mode", ["vector", "text", "hybrid"])
def test_search_reads_only_the_start_of_a_huge_chunk(huge_chunk, rag_bridge, mode):
    async def run():
        return await service_for(rag_config()).search("krill", k=1, mode=mode)

    (hit,) = rag_bridge.run(run())
    assert hit.text == HUGE[:CHUNK_TEXT_CHARS]
    assert hit.text_chars == len(HUGE)
