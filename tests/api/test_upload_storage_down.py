"""An upload while the file storage is down: 503 with the reason, nothing written."""

from __future__ import annotations

import pytest
from botocore.exceptions import EndpointConnectionError
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
