"""An upload while the file storage is down: 503 with the reason, nothing written."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError
from django.core.files.storage import FileSystemStorage
from django.core.files.uploadedfile import SimpleUploadedFile

from devtools import pdf_factory
from documents.models import Document
from tests.api.conftest import bearer, run_async

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_upload_during_a_storage_outage_is_503_and_writes_nothing(make_key, monkeypatch):
    key = make_key()

    def unreachable(self, name, content):
        raise EndpointConnectionError(endpoint_url="http://storage.invalid:9000")

    monkeypatch.setattr(FileSystemStorage, "_save", unreachable)

    async def scenario(client):
        response = await client.post(
            "/api/v1/documents",
            {"file": SimpleUploadedFile("tides.pdf", pdf_factory.text_pdf("Tide tables."))},
            headers=bearer(key),
        )
        assert response.status_code == 503
        assert response.json()["detail"] == "File storage unavailable, try again."

    run_async(scenario)
    assert not Document.objects.exists()


@pytest.mark.parametrize(
    "refusal",
    [
        ClientError(
            {"Error": {"Code": "AccessDenied", "Message": "Access Denied"},
             "ResponseMetadata": {"HTTPStatusCode": 403}},
            "PutObject",
        ),
        ClientError(
            {"Error": {"Code": "NoSuchBucket", "Message": "The bucket does not exist"},
             "ResponseMetadata": {"HTTPStatusCode": 404}},
            "PutObject",
        ),
        NoCredentialsError(),
        PermissionError(13, "Permission denied"),
    ],
    ids=["access-denied", "no-bucket", "no-credentials", "read-only-folder"],
)  # fmt: skip
def test_an_upload_the_storage_refuses_is_503_with_a_sentence_not_a_500(
    make_key, monkeypatch, caplog, refusal
):
    key = make_key()

    def refused(self, name, content):
        raise refusal

    monkeypatch.setattr(FileSystemStorage, "_save", refused)

    async def scenario(client):
        response = await client.post(
            "/api/v1/documents",
            {"file": SimpleUploadedFile("tides.pdf", pdf_factory.text_pdf("Tide tables."))},
            headers=bearer(key),
        )
        assert response.status_code == 503
        assert response.json()["detail"].startswith("File storage refused to store the file")

    with caplog.at_level("ERROR", logger="documents.intake"):
        run_async(scenario)
    assert not Document.objects.exists()
    # The administrators learn what the storage said; the uploader only that it failed.
    assert "file storage refused" in caplog.text and type(refusal).__name__ in caplog.text
