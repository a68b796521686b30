from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from users.models import User


def test_emails_are_unique_whatever_their_case(db):
    User.objects.create_user("Ada@Example.com", "pw")
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.create_user("ada@example.COM", "pw")


def test_email_is_stored_case_folded_and_logs_in_any_case(client, db):
    User.objects.create_user("Ada@Example.com", "a-long-password")
    assert User.objects.get().email == "ada@example.com"
    assert client.login(username="ADA@example.com", password="a-long-password")


def test_a_mixed_case_twin_cannot_sneak_past_the_manager(db):
    User.objects.create_user("mixed@example.com", "pw")
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.bulk_create([User(email="Mixed@Example.com")])
