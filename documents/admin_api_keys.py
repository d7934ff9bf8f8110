"""Admin for API keys: list them (never the key itself) and revoke them."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from documents.api.auth import forget_accepted_keys
from documents.api_keys import api_keys_revoke
from documents.models import ApiKey


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys are created by ``manage.py create_api_key`` (which shows the key once); here they
    are listed, their collections edited, and revoked."""

    list_display = (
        "name",
        "prefix",
        "collections_display",
        "created_at",
        "last_used_at",
        "revoked_at",
    )
    list_filter = (("revoked_at", admin.EmptyFieldListFilter),)
    search_fields = ("name", "prefix")
    fields = ("name", "owner", "prefix", "collections", "created_at", "last_used_at", "revoked_at")
    readonly_fields = ("owner", "prefix", "created_at", "last_used_at", "revoked_at")
    actions = ("revoke",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        # A key made here could not be shown to anyone: only its hash would exist.
        return False

    @admin.display(description="collections")
    def collections_display(self, api_key: ApiKey) -> str:
        return ", ".join(api_key.collections) or "all"

    @admin.action(description="Revoke selected API keys", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        revoked = api_keys_revoke(api_key_ids=list(queryset.values_list("pk", flat=True)))
        forget_accepted_keys()
        self.message_user(request, f"{revoked} API key(s) revoked.", messages.SUCCESS)
