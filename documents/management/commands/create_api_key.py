"""``manage.py create_api_key NAME [--collections a,b]``: make a key for the HTTP API."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from documents.api_keys import api_key_create, parse_collections


class Command(BaseCommand):
    help = (
        "Create an API key for /api/v1 and print it, alone on the last line. It is shown only "
        "this once: only its hash is stored."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="Who or what uses the key (shown in the admin).")
        parser.add_argument(
            "--collections",
            default="",
            help="Comma-separated collections the key may see (default: all).",
        )
        parser.add_argument(
            "--owner",
            default="",
            help="Username the key acts for (default: api-NAME, created inactive if missing).",
        )

    def handle(self, *args: object, **options: str) -> None:
        name = options["name"].strip()
        if not name or len(name) > 100:
            raise CommandError("NAME must be 1 to 100 characters.")
        try:
            collections = parse_collections(options["collections"])
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        created = api_key_create(name=name, collections=collections, owner=options["owner"])
        scope = ", ".join(created.api_key.collections) or "all collections"
        self.stdout.write(
            f"API key {created.api_key.prefix}… created for {name!r} ({scope}). Keep it now: "
            "it is not stored and cannot be shown again."
        )
        self.stdout.write(created.key)
