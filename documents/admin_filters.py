"""Admin list filters on what ingestion recorded about a document's pages."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from documents import selectors
from documents.models import Document


class OcrFilter(admin.SimpleListFilter):
    """Documents with pages read by OCR (their text may hold recognition errors), or none."""

    title = "OCR"
    parameter_name = "ocr"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Has OCR pages"), ("no", "No OCR pages")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Document]) -> QuerySet[Document]:
        ocr = selectors.documents_with_ocr_pages()
        if self.value() == "yes":
            return queryset.filter(pk__in=ocr.values("pk"))
        if self.value() == "no":
            return queryset.exclude(pk__in=ocr.values("pk"))
        return queryset
