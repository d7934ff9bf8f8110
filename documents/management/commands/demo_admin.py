"""``manage.py demo_admin``: make sure a development admin account exists and say how to log in."""

from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = (
        "Create a superuser with a random password (kept in the git-ignored data folder) unless "
        "one exists, and print how to log in. For the embedded development setup only."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default="admin", help="User name (default: admin).")

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.EMBEDDED_DEVELOPMENT:
            raise CommandError(
                "demo_admin is for the embedded development setup; use createsuperuser instead."
            )
        username = options["username"]
        password_file = settings.DATA_DIR / "admin-password"
        user_model = get_user_model()
        user = user_model.objects.filter(username=username).first()
        if user is None:
            password = secrets.token_urlsafe(12)
            user_model.objects.create_superuser(username, f"{username}@localhost", password)
            password_file.parent.mkdir(parents=True, exist_ok=True)
            password_file.write_text(password + "\n")
            password_file.chmod(0o600)
        elif password_file.exists():
            password = password_file.read_text().strip()
        else:
            self.stdout.write(f"Admin user {username!r} exists (password chosen by its owner).")
            return
        self.stdout.write(f"Admin login: user {username!r}, password {password!r}")
        self.stdout.write(f"(the password is also in {password_file})")
