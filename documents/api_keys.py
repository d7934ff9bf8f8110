"""API keys: create one (the key is returned once), recognise one by its hash, revoke some.

A key is ``fca_`` and 43 URL-safe characters (256 random bits). Only its SHA-256 is stored: a
leaked database gives no usable key, and looking a key up by its hash needs no comparison of
secrets in Python (the unique index finds it or not).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.validators import validate_slug
from django.utils import timezone

from documents.models import COLLECTION_MAX_LENGTH, ApiKey

logger = logging.getLogger(__name__)

KEY_PREFIX = "fca_"
# Keys are 47 characters; a longer token is refused before it is hashed or looked up.
MAX_KEY_CHARS = 200
# Characters of the key kept in clear to recognise it in the admin: "fca_" and 8 of the secret.
SHOWN_PREFIX_LENGTH = len(KEY_PREFIX) + 8
# A key's last use is written at most this often: not one write per request.
LAST_USED_EVERY = timedelta(minutes=1)


def looks_like_key(token: str) -> bool:
    """Whether ``token`` has the shape of a key (the prefix, a bounded length): nothing else is
    hashed or looked up."""
    return token.startswith(KEY_PREFIX) and len(token) <= MAX_KEY_CHARS


def api_key_hash(key: str) -> str:
    """The SHA-256 (hex) of a key, as stored."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def parse_collections(raw: str | Sequence[str]) -> list[str]:
    """Collections from ``a,b`` or a list: stripped, de-duplicated, each a valid slug; raises
    :class:`ValidationError` naming the first one that is not."""
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    collections: list[str] = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        if len(item) > COLLECTION_MAX_LENGTH:
            raise ValidationError(
                f"Collection {item[:80]!r}… is longer than {COLLECTION_MAX_LENGTH} characters."
            )
        try:
            validate_slug(item)
        except ValidationError as exc:
            raise ValidationError(
                f"Collection {item!r} is not a slug (letters, digits, - and _ only)."
            ) from exc
        if item not in collections:
            collections.append(item)
    return collections


@dataclass(frozen=True)
class CreatedKey:
    """A new key's record, and the key itself (the only time it exists in clear)."""

    api_key: ApiKey
    key: str


def api_key_create(*, name: str, collections: Sequence[str] = (), owner: str = "") -> CreatedKey:
    """Create a key named ``name`` for the user ``owner`` (default: a user named after the key,
    created inactive when missing, so it can never log in to the admin by itself)."""
    username = owner or f"api-{name}"[:150]
    user, created = get_user_model().objects.get_or_create(
        username=username, defaults={"is_active": False}
    )
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    api_key = ApiKey.objects.create(
        name=name,
        owner=user,
        prefix=key[:SHOWN_PREFIX_LENGTH],
        key_hash=api_key_hash(key),
        collections=parse_collections(collections),
    )
    logger.info(
        "api key created id=%d name=%s prefix=%s collections=%s",
        api_key.pk,
        name,
        api_key.prefix,
        api_key.collections or "all",
    )
    return CreatedKey(api_key, key)


def api_key_authenticate(key: str) -> ApiKey | None:
    """The active key matching ``key``, or None (unknown or revoked). Records its use."""
    if not looks_like_key(key):
        return None
    api_key = ApiKey.objects.filter(key_hash=api_key_hash(key), revoked_at__isnull=True).first()
    if api_key is None:
        return None
    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at >= LAST_USED_EVERY:
        api_key.last_used_at = now
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
    return api_key


def api_keys_revoke(*, api_key_ids: Sequence[int]) -> int:
    """Revoke the keys not revoked yet; return how many were."""
    revoked = ApiKey.objects.filter(pk__in=list(api_key_ids), revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    logger.info("api keys revoked ids=%s count=%d", sorted(api_key_ids), revoked)
    return revoked
