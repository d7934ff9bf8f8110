"""Model signals: a deleted document's stored file goes with it, whoever deleted it."""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.db.models.signals import post_delete

logger = logging.getLogger(__name__)


def delete_stored_file(sender: Any, instance: Any, using: str, **_kwargs: Any) -> None:
    """post_delete of a Document (admin, API, shell, cascade): delete its file from storage
    once the deletion is committed (a rolled-back deletion keeps its file)."""
    name = instance.file.name
    if not name:
        return
    storage = instance.file.storage

    def delete() -> None:
        from documents.models import Document

        # Names are content hashes: the same bytes uploaded again since then are a new document
        # using this very file, which must stay.
        if Document.objects.using(using).filter(file=name).exists():
            logger.info("stored file kept (in use again) name=%s", name)
            return
        storage.delete(name)
        logger.info("stored file deleted name=%s document_id=%s", name, instance.pk)

    transaction.on_commit(delete, using=using, robust=True)


def connect() -> None:
    """Connect the handlers (called once from the app config)."""
    from documents.models import Document

    post_delete.connect(
        delete_stored_file, sender=Document, weak=False, dispatch_uid="fca-delete-stored-file"
    )
