"""The Celery app: wiring only (settings, task discovery, logging through Django's LOGGING)."""

import os

from celery import Celery
from celery.signals import setup_logging

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fca_site.settings")

app = Celery("fca_worker")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Connected here, not in an AppConfig: worker_init fires before Django is set up.
from documents import worker_signals  # noqa: E402 - needs DJANGO_SETTINGS_MODULE set above

worker_signals.connect()


@setup_logging.connect
def configure_logging(**_kwargs: object) -> None:
    """Route worker logs through Django's LOGGING instead of Celery's own set-up."""
    from logging.config import dictConfig

    from django.conf import settings

    dictConfig(settings.LOGGING)
