"""Django project: settings, URLs and the Celery app that runs PDF ingestion."""

from fca_site.celery import app as celery_app

__all__ = ("celery_app",)
