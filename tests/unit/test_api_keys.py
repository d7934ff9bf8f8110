"""API keys: created by the command (shown once, hashed), recognised, revoked in the admin."""

from __future__ import annotations

import hashlib
from io import StringIO

import pytest
from asgiref.sync import async_to_sync
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.urls import reverse

from documents import api_keys
from documents.api.auth import authenticate
from documents.api_keys import MAX_KEY_CHARS, api_key_authenticate, looks_like_key
from documents.models import COLLECTION_MAX_LENGTH, ApiKey

pytestmark = pytest.mark.django_db(transaction=True)


def create_key(*args: str) -> tuple[str, str]:
    out = StringIO()
    call_command("create_api_key", *args, stdout=out)
    text = out.getvalue()
    return text, text.strip().splitlines()[-1]


def test_command_prints_the_key_alone_on_its_last_line_and_stores_only_its_hash():
    text, key = create_key("support-bot", "--collections", "manuals, faq,manuals")
    api_key = ApiKey.objects.get()
    assert key.startswith("fca_") and len(key) > 40 and " " not in key
    assert api_key.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert api_key.prefix == key[:12]
    assert api_key.collections == ["manuals", "faq"]
    assert api_key.owner.username == "api-support-bot" and not api_key.owner.is_active
    assert text.count(key) == 1
    # Nothing stored holds the key itself.
    assert key not in repr(list(ApiKey.objects.values()))


def test_command_refuses_a_collection_that_is_not_a_slug():
    with pytest.raises(CommandError, match="'a b' is not a slug"):
        create_key("bot", "--collections", "a b")
    assert not ApiKey.objects.exists()


def test_a_token_without_a_key_shape_is_refused_by_both_doors_before_any_lookup():
    _, key = create_key("bot")
    padded = key + "A" * (MAX_KEY_CHARS - len(key))
    too_long = padded + "A"
    assert looks_like_key(key) and looks_like_key(padded)
    assert not looks_like_key(too_long) and not looks_like_key("xyz_" + key[4:])
    ApiKey.objects.update(key_hash=api_keys.api_key_hash(too_long))
    assert api_key_authenticate(too_long) is None
    assert async_to_sync(authenticate)(too_long) is None


def test_the_collection_length_message_follows_the_limit(monkeypatch):
    with pytest.raises(ValidationError, match=f"longer than {COLLECTION_MAX_LENGTH} characters"):
        api_keys.parse_collections("a" * (COLLECTION_MAX_LENGTH + 1))
    monkeypatch.setattr(api_keys, "COLLECTION_MAX_LENGTH", 10)
    with pytest.raises(ValidationError, match="longer than 10 characters"):
        api_keys.parse_collections("a" * 11)


def test_a_key_is_recognised_until_revoked_in_the_admin(staff_client):
    _, key = create_key("bot")
    api_key = api_key_authenticate(key)
    assert api_key is not None and api_key.last_used_at is not None
    assert api_key_authenticate(key + "x") is None
    changelist = reverse("admin:documents_apikey_changelist")
    page = staff_client.get(changelist)
    assert api_key.prefix in page.content.decode() and key not in page.content.decode()
    staff_client.post(
        changelist, {"action": "revoke", "_selected_action": [api_key.pk]}, follow=True
    )
    assert ApiKey.objects.get().revoked_at is not None
    assert api_key_authenticate(key) is None
