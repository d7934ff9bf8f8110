"""/api/v1 on a live ASGI server (gunicorn's asgi worker, as in docker-compose.yml) with a real
HTTP client, and a property-based run of its OpenAPI document (schemathesis) finding no 500."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from devtools import pdf_factory
from documents.models import Document
from tests.api.conftest import bearer
from tests.conftest import TEST_BROKER_URL, TEST_QUEUE
from tests.live_server import LiveServer, start_gunicorn, start_server, stop_server

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

# Examples per operation: enough to reach each kind of bad input, quick on a shared machine.
EXAMPLES = 30
SERVER_ENV = {"RAG_API_RATE_LIMIT": "0", "RAG_API_RATE_REDIS_URL": TEST_BROKER_URL}


@pytest.fixture(scope="module")
def live_api(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[LiveServer]:
    with django_db_blocker.unblock():
        server = start_gunicorn(
            tmp_path_factory.mktemp("asgi-logs"),
            broker_url=TEST_BROKER_URL,
            queue=TEST_QUEUE,
            worker_class="asgi",
            extra_env=SERVER_ENV,
        )
    yield server
    stop_server(server)


def test_upload_search_and_delete_over_http(live_api, make_key, index_text):
    key = make_key()
    indexed = index_text("Lighthouses guide ships along rocky coasts.", collection="sea")
    with httpx.Client(base_url=f"{live_api.url}/api/v1", headers=bearer(key)) as http:
        upload = http.post(
            "/documents",
            files={"file": ("light.pdf", pdf_factory.text_pdf("Keepers of the light."))},
            data={"collection": "sea"},
        )
        assert upload.status_code == 201, upload.text
        again = http.post("/documents", files={"file": ("x.pdf", pdf_factory.text_pdf(
            "Keepers of the light."))})  # fmt: skip
        assert again.status_code == 200 and again.json()["duplicate"] is True
        query = {"query": "lighthouses rocky coasts", "k": 3, "filters": {"collections": ["sea"]}}
        hits = http.post("/search", json=query).json()["hits"]
        assert hits and hits[0]["document_id"] == indexed and hits[0]["collection"] == "sea"
        assert http.delete(f"/documents/{indexed}").status_code == 204
        assert http.post("/search", json={**query, "mode": "text"}).json()["hits"] == []
        bad = http.post(
            "/search", content=b'{"query": ', headers={"content-type": "application/json"}
        )
        assert 400 <= bad.status_code < 500 and "detail" in bad.json()
        assert http.get("/documents", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert not Document.objects.filter(pk=indexed).exists()


@pytest.fixture(scope="module")
def runserver_api(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[LiveServer]:
    with django_db_blocker.unblock():
        server = start_server(
            tmp_path_factory.mktemp("runserver-logs"),
            broker_url=TEST_BROKER_URL,
            queue=TEST_QUEUE,
            extra_env=SERVER_ENV,
        )
    yield server
    stop_server(server)


def test_runserver_serves_the_api_in_development(runserver_api, make_key, index_text):
    """Under WSGI each async view gets a loop of its own: search runs on the bridge's
    long-lived loop, request after request."""
    key = make_key()
    indexed = index_text("Tide tables predict the height of the sea.", collection="sea")
    with httpx.Client(base_url=f"{runserver_api.url}/api/v1", headers=bearer(key)) as http:
        for _ in range(3):
            response = http.post("/search", json={"query": "tide tables sea", "k": 2})
            assert response.status_code == 200, response.text
            assert response.json()["hits"][0]["document_id"] == indexed
        assert http.get(f"/documents/{indexed}").json()["collection"] == "sea"


def test_no_input_makes_the_api_answer_500(live_api, make_key, index_text):
    """Every operation of the OpenAPI document, with inputs generated from its schemas (valid
    and not), answers below 500 and, when it refuses, with a JSON ``detail``."""
    key = make_key()
    index_text("Something to find and to delete.")
    schema = schemathesis.openapi.from_url(f"{live_api.url}/api/v1/openapi.json")
    checked = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES, deadline=None, database=None,
            suppress_health_check=list(HealthCheck),
        )  # fmt: skip
        def answers_below_500(case) -> None:
            response = case.call(headers=bearer(key), timeout=30)
            assert response.status_code < 500, (case.method, case.path, response.text[:500])
            if response.status_code >= 400 and response.status_code != 405:
                assert "detail" in response.json(), response.text[:300]

        answers_below_500()
        checked.append(f"{operation.method.upper()} {operation.path}")
    assert len(checked) == 6, checked


def test_under_asgi_the_api_skips_the_sites_middleware_but_keeps_its_security_headers(
    live_api, make_key
):
    with httpx.Client(base_url=live_api.url) as http:
        api = http.get("/api/v1/documents", headers=bearer(make_key()))
        admin = http.get("/admin/login/")
    assert api.status_code == 200 and admin.status_code == 200
    assert api.headers["x-content-type-options"] == "nosniff"  # SecurityMiddleware's
    assert api.headers["referrer-policy"] == "same-origin"
    # The site's chain (fca_site.api_handler): clickjacking header, session and CSRF cookies.
    assert admin.headers["x-frame-options"] == "DENY" and "csrftoken" in admin.cookies
    assert "x-frame-options" not in api.headers and not api.cookies


def test_under_asgi_the_api_refuses_a_host_not_allowed(live_api, make_key):
    with httpx.Client(base_url=live_api.url) as http:
        response = http.get(
            "/api/v1/documents", headers={**bearer(make_key()), "Host": "evil.example"}
        )
    assert response.status_code == 400
