"""REST API inputs that fail with 400, never 500, and accept exactly what the OpenAPI schema states.

Datetimes: Django converts an aware datetime to UTC for the database, and one at the edge of
the range (0001-01-01T00:00:00+14:00) has no UTC form: OverflowError, a 500. Every datetime
the API takes (filters, cursors) goes through `in_utc_range`.
"""

from __future__ import annotations

from datetime import UTC, datetime

import django_filters
from django import forms
from django.db import models
from django_filters.fields import IsoDateTimeField
from rest_framework import serializers


def in_utc_range(value: datetime) -> bool:
    """Whether an aware datetime has a UTC form (Django stores every datetime in UTC)."""
    try:
        value.astimezone(UTC)
    except OverflowError:
        return False
    return True


class StrictIsoDateTimeField(IsoDateTimeField):
    """ISO 8601; present but empty is an error (not "no filter"), and so is a time with no UTC form."""

    def to_python(self, value):
        if value is not None and not str(value).strip():
            raise forms.ValidationError("Enter a date and time (ISO 8601), or leave the parameter out.")
        parsed = super().to_python(value)
        if parsed is not None and not in_utc_range(parsed):
            raise forms.ValidationError("This date and time is out of range.")
        return parsed


class StrictIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = StrictIsoDateTimeField


def integer_schema(*, minimum: int, maximum: int) -> dict:
    """The schema of an integer parameter with the bounds the view enforces."""
    return {"type": "integer", "minimum": minimum, "maximum": maximum}


class StrictBooleanField(serializers.BooleanField):
    """JSON true or false only, as the schema says (DRF's also takes 0, 1, "yes", "off"...)."""

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class StrictCharField(serializers.CharField):
    """A JSON string only (DRF's also turns numbers into strings)."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictModelSerializer(serializers.ModelSerializer):
    """Model fields with the strict JSON types above: what the schema says is what is accepted."""

    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.CharField: StrictCharField,
        models.TextField: StrictCharField,
        models.BooleanField: StrictBooleanField,
    }
