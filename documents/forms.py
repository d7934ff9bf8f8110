"""Forms: the multi-file PDF upload."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile

from documents.models import COLLECTION_MAX_LENGTH, DEFAULT_COLLECTION


class MultipleFileInput(forms.ClearableFileInput):
    """A file input that lets the browser pick several files."""

    allow_multiple_selected = True


class MultiplePdfField(forms.FileField):
    """A list of uploaded files. Each is judged on its own by the intake (a PDF header,
    the size limit), so one bad file is reported without turning the others away."""

    widget = MultipleFileInput

    def __init__(self, **kwargs: object) -> None:
        # An empty file is the intake's to reject, with its reason, like any other bad file.
        super().__init__(allow_empty_file=True, **kwargs)

    def clean(self, data: object, initial: object = None) -> list[UploadedFile]:
        files = data if isinstance(data, list | tuple) else [data]
        files = [f for f in files if f]
        if not files:
            raise ValidationError(self.error_messages["required"], code="required")
        cleaned: list[UploadedFile] = []
        for uploaded in files:
            cleaned.append(super().clean(uploaded, initial))
        return cleaned


class UploadPdfsForm(forms.Form):
    """Upload several PDFs at once."""

    files = MultiplePdfField(
        label="PDF files",
        help_text=(
            "Choose one or more PDF files (at most "
            f"{settings.RAG_MAX_UPLOAD_BYTES // 1_000_000} MB each). Each file is checked on "
            "its own: files already present are reported, not duplicated; failed or stuck ones "
            "are queued again."
        ),
    )
    collection = forms.SlugField(
        label="Collection",
        max_length=COLLECTION_MAX_LENGTH,
        initial=DEFAULT_COLLECTION,
        required=False,
        help_text="Collection of the new documents (files already present keep theirs).",
    )
    force = forms.BooleanField(
        label="Reingest files already ready",
        required=False,
        help_text="Queue again files whose document is already ingested (ready).",
    )

    def clean_collection(self) -> str:
        return self.cleaned_data.get("collection") or DEFAULT_COLLECTION


class SearchForm(forms.Form):
    """Query, mode and number of hits for the admin search page."""

    q = forms.CharField(label="Search", max_length=500, strip=True)
    mode = forms.ChoiceField(
        label="Mode",
        choices=[
            ("hybrid", "Hybrid (vector + full-text)"),
            ("vector", "Vector (meaning)"),
            ("text", "Full-text (words)"),
        ],
        initial="hybrid",
        required=False,
    )
    k = forms.IntegerField(label="Hits", min_value=1, max_value=50, initial=10, required=False)

    def clean_mode(self) -> str:
        return self.cleaned_data.get("mode") or "hybrid"

    def clean_k(self) -> int:
        return self.cleaned_data.get("k") or 10
