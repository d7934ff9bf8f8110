"""App configuration."""

from django.apps import AppConfig


class DocumentsConfig(AppConfig):
    """Registers the system checks and the model signals (the worker's signals are wired in
    fca_site.celery)."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "documents"
    verbose_name = "Documents"

    def ready(self) -> None:
        from documents import checks, signals  # noqa: F401 - checks register on import

        signals.connect()
