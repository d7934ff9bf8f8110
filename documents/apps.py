"""App configuration."""

from django.apps import AppConfig


class DocumentsConfig(AppConfig):
    """Registers the worker signal handlers that manage the bridge's event loop."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "documents"
    verbose_name = "Documents"

    def ready(self) -> None:
        from documents import checks, worker_signals  # noqa: F401 - checks register on import

        worker_signals.connect()
