"""App configuration."""

from django.apps import AppConfig


class DocumentsConfig(AppConfig):
    """Registers the system checks (the worker's signals are wired in fca_site.celery)."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "documents"
    verbose_name = "Documents"

    def ready(self) -> None:
        from documents import checks  # noqa: F401 - checks register on import
