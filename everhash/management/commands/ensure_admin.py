from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create a local admin login if there is no superuser yet, and print it."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--email", default="admin@localhost")

    def handle(self, *args, email: str, **options) -> None:
        User = get_user_model()
        if User.objects.filter(is_superuser=True).exists():
            self.stdout.write(
                f"An admin login exists. Forgot its password? Run: .venv/bin/python manage.py changepassword {email}"
            )
            return
        password = secrets.token_urlsafe(12)
        User.objects.create_superuser(email, password)
        self.stdout.write(self.style.SUCCESS("Created a local admin login for http://127.0.0.1:8000/admin/"))
        self.stdout.write(f"    email:    {email}")
        self.stdout.write(f"    password: {password}")
