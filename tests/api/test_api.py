"""/api/v1 through Django's async test client: every endpoint, keys, collections, deletion,
duplicates and bad input (4xx with a JSON body, never a 500)."""

from __future__ import annotations

import pytest
from django.core.files.storage import default_storage

from devtools import pdf_factory
from documents.highlight import CHUNK_TEXT_CHARS, excerpt
from documents.models import ApiKey, Chunk, Document
from tests.api.conftest import bearer, run_async

pytestmark = pytest.mark.django_db(transaction=True)

API = "/api/v1"


def pdf_upload(text: str, name: str = "guide.pdf"):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, pdf_factory.text_pdf(text), content_type="application/pdf")


def test_upload_creates_then_reports_the_duplicate(make_key):
    key = make_key()
    data = pdf_factory.text_pdf("Quarterly report on harbour seals.")

    async def scenario(client):
        from django.core.files.uploadedfile import SimpleUploadedFile

        first = await client.post(
            f"{API}/documents",
            {"file": SimpleUploadedFile("seals.pdf", data), "collection": "zoo"},
            headers=bearer(key),
        )
        assert first.status_code == 201, first.content
        body = first.json()
        assert body["duplicate"] is False and body["collection"] == "zoo"
        assert body["status"] == "queued" and body["title"] == "seals"
        again = await client.post(
            f"{API}/documents", {"file": SimpleUploadedFile("other.pdf", data)}, headers=bearer(key)
        )
        assert again.status_code == 200
        assert again.json()["duplicate"] is True and again.json()["id"] == body["id"]

    run_async(scenario)
    assert Document.objects.count() == 1


def test_a_non_pdf_upload_is_refused_with_its_reason_and_nothing_written(make_key):
    key = make_key()

    async def scenario(client):
        from django.core.files.uploadedfile import SimpleUploadedFile

        response = await client.post(
            f"{API}/documents",
            {"file": SimpleUploadedFile("x.pdf", b"hello, not a pdf")},
            headers=bearer(key),
        )
        assert response.status_code == 400
        assert "not a PDF" in response.json()["detail"]

    run_async(scenario)
    assert not Document.objects.exists()
    assert not default_storage.exists("documents") or not default_storage.listdir("documents")[1]


def test_nul_in_a_title_or_file_name_is_dropped_not_a_500(make_key):
    key = make_key()

    async def scenario(client):
        from django.core.files.uploadedfile import SimpleUploadedFile

        named = await client.post(
            f"{API}/documents",
            {"file": SimpleUploadedFile("a\x00b.pdf", pdf_factory.text_pdf("nul name"))},
            headers=bearer(key),
        )
        assert named.status_code == 201, named.content
        titled = await client.post(
            f"{API}/documents",
            {"file": pdf_upload("nul title"), "title": "x\x00y"},
            headers=bearer(key),
        )
        assert titled.status_code == 201 and titled.json()["title"] == "x y"

    run_async(scenario)


def test_auth_failures_are_401_with_json(make_key):
    key = make_key()
    ApiKey.objects.filter().update(revoked_at="2026-01-01T00:00:00Z")

    async def scenario(client):
        for headers in ({}, bearer("fca_wrong"), {"Authorization": "Basic abc"}, bearer(key)):
            response = await client.get(f"{API}/documents", headers=headers)
            assert response.status_code == 401, headers
            assert response.json() == {"detail": "Unauthorized"}

    run_async(scenario)


def test_a_key_revoked_in_the_admin_is_refused_at_once(make_key, staff_client):
    key = make_key()
    codes = []

    async def call(client):
        codes.append((await client.get(f"{API}/documents", headers=bearer(key))).status_code)

    run_async(call)  # accepted, and remembered by this process
    changelist = "/admin/documents/apikey/"
    staff_client.post(
        changelist, {"action": "revoke", "_selected_action": [ApiKey.objects.get().pk]}
    )
    run_async(call)
    assert codes == [200, 401]


def test_list_get_and_filters(make_key, index_text):
    key = make_key()
    a = index_text("Alpha text about rivers.", collection="geo", title="Rivers of Europe")
    index_text("Beta text about mountains.", collection="geo", title="Mountains")
    index_text("Gamma text about stars.", collection="sky", title="Stars")

    async def scenario(client):
        listed = await client.get(f"{API}/documents?collection=geo&q=river", headers=bearer(key))
        assert listed.status_code == 200
        assert [d["id"] for d in listed.json()["items"]] == [a]
        page = await client.get(f"{API}/documents?limit=2&offset=0", headers=bearer(key))
        assert page.json()["count"] == 3 and len(page.json()["items"]) == 2
        one = await client.get(f"{API}/documents/{a}", headers=bearer(key))
        body = one.json()
        assert body["status"] == "ready" and body["chunk_count"] >= 1
        assert body["pages_done"] == body["page_count"] == 1 and body["collection"] == "geo"
        missing = await client.get(f"{API}/documents/999999", headers=bearer(key))
        assert missing.status_code == 404 and "detail" in missing.json()

    run_async(scenario)


def test_a_key_limited_to_collections_sees_only_their_documents(make_key, index_text):
    limited = make_key("limited", "geo")
    mine = index_text("Rivers and lakes of the north.", collection="geo")
    other = index_text("Rivers and lakes of the south.", collection="sky")

    async def scenario(client):
        h = bearer(limited)
        listed = await client.get(f"{API}/documents", headers=h)
        assert [d["id"] for d in listed.json()["items"]] == [mine]
        for method, path in (
            ("get", f"/documents/{other}"),
            ("post", f"/documents/{other}/reingest"),
            ("delete", f"/documents/{other}"),
        ):
            response = await getattr(client, method)(f"{API}{path}", headers=h)
            assert response.status_code == 404, (method, path)
        found = await client.post(
            f"{API}/search",
            {"query": "rivers lakes", "k": 10, "filters": {"collections": ["geo", "sky"]}},
            content_type="application/json",
            headers=h,
        )
        assert {hit["document_id"] for hit in found.json()["hits"]} == {mine}
        refused = await client.post(
            f"{API}/documents",
            {"file": pdf_upload("x"), "collection": "sky"},
            headers=h,
        )
        assert refused.status_code == 403

    run_async(scenario)
    assert Document.objects.filter(pk=other).exists()


def test_bytes_failed_in_another_collection_are_refused_without_touching_that_document(
    make_key,
):
    data = pdf_factory.text_pdf("Tide tables for the southern coast.")
    everything, limited = make_key("everything"), make_key("limited", "geo")

    async def upload(client, key, collection):
        from django.core.files.uploadedfile import SimpleUploadedFile

        return await client.post(
            f"{API}/documents",
            {"file": SimpleUploadedFile("tides.pdf", data), "collection": collection},
            headers=bearer(key),
        )

    async def store_in_sky(client):
        assert (await upload(client, everything, "sky")).status_code == 201

    run_async(store_in_sky)
    Document.objects.update(status=Document.Status.FAILED, error_code="timeout")
    before = Document.objects.get()
    refused = []

    async def upload_limited(client):
        refused.append(await upload(client, limited, "geo"))

    run_async(upload_limited)
    (response,) = refused
    assert response.status_code == 409
    assert response.json() == {"detail": "These bytes cannot be stored in this collection."}
    for secret in (str(before.pk), before.title, before.sha256, "sky"):
        assert secret not in response.content.decode()
    after = Document.objects.get()
    assert (after.status, after.last_task_id, after.collection) == (
        Document.Status.FAILED,
        before.last_task_id,
        "sky",
    )


def test_a_huge_chunk_is_an_excerpt_in_a_search_hit(make_key, rag_bridge):
    huge = "Whales eat krill. " + " ".join(["A" * 1000] * 200)
    document = Document.objects.create(
        title="huge", sha256="e" * 64, size_bytes=1, file="x/huge.pdf", status="ready"
    )
    Chunk.objects.create(
        document=document,
        ordinal=0,
        page_start=1,
        page_end=1,
        text=huge,
        token_count=203,
        embedder="hash-384",
        embedding=[0.0] * 383 + [1.0],
    )
    key = make_key()
    found = []

    async def scenario(client):
        found.append(
            await client.post(
                f"{API}/search",
                {"query": "krill", "mode": "text"},
                content_type="application/json",
                headers=bearer(key),
            )
        )

    run_async(scenario)
    (hit,) = found[0].json()["hits"]
    assert hit["text"] == excerpt(huge)
    assert f"({len(huge) - CHUNK_TEXT_CHARS:,} more characters)" in hit["text"]
    assert hit["text_chars"] == len(huge)


def test_search_returns_cited_hits_and_applies_filters(make_key, index_text):
    key = make_key()
    whales = index_text("Blue whales feed on krill in cold oceans.", collection="sea")
    index_text("Humpback whales sing long songs.", collection="songs")

    async def scenario(client):
        async def search(payload):
            response = await client.post(
                f"{API}/search", payload, content_type="application/json", headers=bearer(key)
            )
            assert response.status_code == 200, response.content
            return response.json()["hits"]

        hits = await search({"query": "whales", "k": 5, "mode": "text"})
        assert len(hits) == 2
        hit = next(h for h in hits if h["document_id"] == whales)
        assert set(hit) == {
            "document_id", "title", "collection", "page_start", "page_end", "text", "text_chars",
            "score", "chunk_id", "ocr", "ocr_confidence",
        }  # fmt: skip
        assert hit["collection"] == "sea" and "krill" in hit["text"] and hit["page_start"] == 1
        assert hit["text_chars"] == len(hit["text"])  # a short chunk: whole
        assert (hit["ocr"], hit["ocr_confidence"]) == (False, None)  # a text layer, not a scan
        by_collection = await search({"query": "whales", "filters": {"collections": ["sea"]}})
        assert {h["document_id"] for h in by_collection} == {whales}
        by_id = await search({"query": "whales", "mode": "vector",
                              "filters": {"document_ids": [whales]}})  # fmt: skip
        assert {h["document_id"] for h in by_id} == {whales}
        future = await search({"query": "whales", "filters": {"created_after": "2999-01-01"}})
        assert future == []
        past = await search({"query": "whales", "filters": {"created_before": "2000-01-01T00:00Z"}})
        assert past == []

    run_async(scenario)


def test_search_hits_say_ocr_and_its_confidence(make_key, index_text):
    key = make_key()
    scanned = index_text("Otters hold hands while they sleep on the water.")
    # As the OCR stage records it on a scanned page's chunks.
    assert Chunk.objects.filter(document_id=scanned).update(ocr=True, ocr_confidence=87.5) >= 1

    async def scenario(client):
        response = await client.post(
            f"{API}/search", {"query": "otters sleep", "mode": "text"},
            content_type="application/json", headers=bearer(key),
        )  # fmt: skip
        assert response.status_code == 200, response.content
        (hit,) = response.json()["hits"]
        assert (hit["document_id"], hit["ocr"], hit["ocr_confidence"]) == (scanned, True, 87.5)

    run_async(scenario)


def test_delete_removes_document_chunks_and_file_and_search_forgets_it(make_key, index_text):
    key = make_key()
    doomed = index_text("Penguins huddle against the Antarctic wind.")
    Document.objects.filter(pk=doomed).update(file="documents/doomed.pdf")
    default_storage.save("documents/doomed.pdf", pdf_upload("x"))

    async def scenario(client):
        h = bearer(key)
        query = {"query": "penguins antarctic", "mode": "text"}
        before = await client.post(f"{API}/search", query, content_type="application/json",
                                   headers=h)  # fmt: skip
        assert [hit["document_id"] for hit in before.json()["hits"]] == [doomed]
        deleted = await client.delete(f"{API}/documents/{doomed}", headers=h)
        assert deleted.status_code == 204
        after = await client.post(f"{API}/search", query, content_type="application/json",
                                  headers=h)  # fmt: skip
        assert after.json()["hits"] == []
        again = await client.delete(f"{API}/documents/{doomed}", headers=h)
        assert again.status_code == 404

    run_async(scenario)
    assert not Document.objects.filter(pk=doomed).exists()
    assert not Chunk.objects.filter(document_id=doomed).exists()
    assert not default_storage.exists("documents/doomed.pdf")


def test_reingest_queues_a_ready_document_and_refuses_one_in_progress(make_key, index_text):
    key = make_key()
    ready = index_text("Reingest me.")

    async def scenario(client):
        first = await client.post(f"{API}/documents/{ready}/reingest", headers=bearer(key))
        assert first.status_code == 202 and first.json()["queued"] is True
        assert first.json()["status"] == "queued"
        second = await client.post(f"{API}/documents/{ready}/reingest", headers=bearer(key))
        assert second.status_code == 409 and second.json()["queued"] is False

    run_async(scenario)


@pytest.mark.parametrize(
    "payload, fragment",
    [
        ('{"query": "x", ', "detail"),
        ('{"query": "x", "colour": "red"}', "extra_forbidden"),
        ('{"query": "x", "k": 0}', "greater_than_equal"),
        ('{"query": "x", "k": 51}', "less_than_equal"),
        ('{"query": "' + "a" * 100_000 + '"}', "string_too_long"),
        ('{"query": "x", "filters": {"collections": ["not a slug"]}}', "string_pattern"),
        ('{"query": "x\\u0000"}', "NUL"),
        ('{"query": "x", "filters": {"document_ids": [99999999999999999999]}}', "less_than"),
        ("[]", "detail"),
    ],
)
def test_bad_search_input_is_4xx_json(make_key, payload, fragment):
    key = make_key()

    async def scenario(client):
        response = await client.post(
            f"{API}/search", payload, content_type="application/json", headers=bearer(key)
        )
        assert 400 <= response.status_code < 500, response.content[:300]
        assert fragment in response.content.decode()
        response.json()

    run_async(scenario)


def test_rate_limit_answers_429_with_retry_after(make_key, settings):
    settings.RAG_API_RATE_LIMIT = 3
    settings.RAG_API_RATE_WINDOW_SECONDS = 3600
    key = make_key()

    async def scenario(client):
        codes = [
            (await client.get(f"{API}/documents", headers=bearer(key))).status_code
            for _ in range(4)
        ]
        assert codes == [200, 200, 200, 429]
        limited = await client.get(f"{API}/documents", headers=bearer(key))
        assert 0 < int(limited.headers["Retry-After"]) <= 3600
        assert "Rate limit" in limited.json()["detail"]

    run_async(scenario)


def test_openapi_document_and_docs_page_are_served():
    async def scenario(client):
        schema = await client.get(f"{API}/openapi.json")
        assert schema.status_code == 200
        assert {"/api/v1/search", "/api/v1/documents/{document_id}"} <= set(schema.json()["paths"])
        docs = await client.get(f"{API}/docs")
        assert docs.status_code == 200 and b"openapi.json" in docs.content

    run_async(scenario)
