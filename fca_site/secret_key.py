"""Which values of ``DJANGO_SECRET_KEY`` production refuses to start with.

The rule is the one ``manage.py check --deploy`` warns about (security.W009): fewer than 50
characters, fewer than 5 distinct characters, or Django's ``django-insecure-`` prefix; plus the
placeholder shown in ``.env.example``. A warning nobody reads lets a guessable key sign every
session and password-reset link, so production stops instead.
"""

from __future__ import annotations

MIN_LENGTH = 50
MIN_DISTINCT_CHARACTERS = 5
INSECURE_PREFIX = "django-insecure-"
# The value .env.example shows (commented out); copying it as it is must not work.
EXAMPLE_VALUE = "replace-with-the-output-of-the-command-above"


def weak_secret_key_reason(key: str) -> str | None:
    """Why ``key`` is unfit for production, or None when it is acceptable."""
    if key == EXAMPLE_VALUE:
        return "it is the example value from .env.example"
    if key.startswith(INSECURE_PREFIX):
        return f"it starts with {INSECURE_PREFIX!r}, the prefix of Django's generated test keys"
    if len(key) < MIN_LENGTH:
        return f"it has {len(key)} characters; at least {MIN_LENGTH} are needed"
    if len(set(key)) < MIN_DISTINCT_CHARACTERS:
        return (
            f"it has {len(set(key))} distinct characters; at least {MIN_DISTINCT_CHARACTERS} "
            "are needed"
        )
    return None
