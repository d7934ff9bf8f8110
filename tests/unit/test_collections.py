"""Collections in the admin: chosen at upload, a list filter, editable on the document."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from devtools import pdf_factory
from documents.models import Document

pytestmark = pytest.mark.django_db


def pdf(name: str) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, pdf_factory.text_pdf(name), content_type="application/pdf")


def test_upload_puts_new_documents_in_the_chosen_collection_default_otherwise(
    staff_client, django_capture_on_commit_callbacks
):
    url = reverse("admin:documents_document_upload")
    with django_capture_on_commit_callbacks():
        staff_client.post(url, {"files": [pdf("a.pdf")], "collection": "manuals"})
        staff_client.post(url, {"files": [pdf("b.pdf")]})
        refused = staff_client.post(url, {"files": [pdf("c.pdf")], "collection": "not a slug"})
    assert dict(Document.objects.values_list("title", "collection")) == {
        "a": "manuals",
        "b": "default",
    }
    assert refused.status_code == 200 and b"slug" in refused.content


def test_collection_is_a_list_filter_and_editable(staff_client):
    one = Document.objects.create(title="one", sha256="1" * 64, size_bytes=1, collection="faq")
    Document.objects.create(title="two", sha256="2" * 64, size_bytes=1)
    listed = staff_client.get(reverse("admin:documents_document_changelist"), {"collection": "faq"})
    assert listed.status_code == 200
    assert [d.pk for d in listed.context["cl"].result_list] == [one.pk]
    change = reverse("admin:documents_document_change", args=[one.pk])
    response = staff_client.post(change, {"title": "one", "collection": "manuals"})
    assert response.status_code == 302, response.content[:500]
    one.refresh_from_db()
    assert one.collection == "manuals"
