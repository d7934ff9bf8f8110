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


def upload_while_storage_raises(key: str, monkeypatch, error: BaseException) -> list:
    """Upload a PDF over the API while the storage raises ``error`` on save; the answer's
    status and detail."""

    def failing(self, name, content):
        raise error

    monkeypatch.setattr(FileSystemStorage, "_save", failing)
    answer = []

    async def scenario(client):
        response = await client.post(
            "/api/v1/documents",
            {"file": SimpleUploadedFile("tides.pdf", pdf_factory.text_pdf("Tide tables."))},
            headers=bearer(key),
        )
        answer.extend([response.status_code, response.json()["detail"]])

    run_async(scenario)
    return answer


def test_an_upload_during_a_storage_outage_is_503_and_writes_nothing(make_key, monkeypatch):
    outage = EndpointConnectionError(endpoint_url="http://storage.invalid:9000")
    status, detail = upload_while_storage_raises(make_key(), monkeypatch, outage)
    assert status == 503
    assert detail == "File storage unavailable, try again."
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
    with caplog.at_level("ERROR", logger="documents.intake"):
        status, detail = upload_while_storage_raises(make_key(), monkeypatch, refusal)
    assert status == 503
    assert detail.startswith("File storage refused to store the file")
    assert not Document.objects.exists()
    # The administrators learn what the storage said; the uploader only that it failed.
    assert "file storage refused" in caplog.text and type(refusal).__name__ in caplog.text
