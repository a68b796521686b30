"""What every resource of the REST API shares: error shapes, paginators, absolute links and media URLs,
and conditional GET (everhash/lib/caching.py). No app imports here: albums/api.py, pictures/api.py
and tweets/api.py build on it.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from datetime import datetime
from functools import reduce
from operator import or_

from django.db.models import Q
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import pagination, serializers
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

from everhash.lib import media
from everhash.lib.apiparams import in_utc_range
from everhash.lib.caching import Conditional

# --- Errors -----------------------------------------------------------------------------------

ErrorSerializer = inline_serializer(
    "Error", fields={"detail": serializers.CharField(help_text="What went wrong, in plain words.")}
)
ConflictSerializer = inline_serializer(
    "AlbumExists",
    fields={
        "detail": serializers.CharField(),
        "album": serializers.URLField(allow_null=True, help_text="The existing album, when you may see it."),
    },
)
ERROR_DESCRIPTIONS = {
    400: "Invalid input: a message per field (or `detail`).",
    401: "Not signed in: send `Authorization: Bearer <token>` or a session cookie.",
    403: "Signed in, but not allowed: only the album's owner (or staff) may do this, or a quota is reached.",
    404: "No such album or picture, or not one you may see (unlisted albums need `?key=`).",
    409: "An album for this hashtag exists already.",
    429: "Too many requests: wait for the number of seconds in `Retry-After`.",
}


def errors(*codes: int) -> dict[int, OpenApiResponse]:
    """Error responses for `extend_schema(responses=...)`; 429 applies to every endpoint."""
    # 400: {"field": ["message", ...], ...} (or {"detail": "..."}).
    schemas = {400: OpenApiTypes.OBJECT, 409: ConflictSerializer}
    return {
        code: OpenApiResponse(schemas.get(code, ErrorSerializer), description=ERROR_DESCRIPTIONS[code])
        for code in (*codes, 429)
    }


# --- Absolute URLs -----------------------------------------------------------------------------


def origin(request: Request) -> str:
    """`scheme://host` of the request, computed once per request."""
    value = getattr(request, "_everhash_origin", None)
    if value is None:
        value = request._everhash_origin = request.build_absolute_uri("/")[:-1]
    return value


def media_urls(request: Request) -> Callable[[str], str]:
    """A function giving the absolute URL of a stored file for this request (everhash/lib/media.py)."""
    return media.absolute_media_urls(origin(request))


def media_url(request: Request, key: str) -> str:
    return media_urls(request)(key)


# --- Conditional GET and pagination ----------------------------------------------------------------


class ConditionalGetMixin:
    """`ETag` from the response body and `304 Not Modified` for a matching `If-None-Match`, and the
    rendered page stored under `page_cache_key` when a view sets one (everhash/lib/caching.py).

    Hashing the rendered body costs microseconds and is always right: any change a client could
    see (a new picture, a new like count, a renamed album) changes the tag.
    """

    page_cache_key: str | None = None
    page_cache_seconds: int = 0

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        conditional = Conditional(
            request,
            key=self.page_cache_key,
            seconds=self.page_cache_seconds,
            # What a caller sees depends on who they are (their own albums, unlisted ones).
            vary=("Authorization", "Cookie"),
            revalidate=False,
        )
        # A page answered from the cache (a plain HttpResponse) is not stored again.
        return conditional.finish(response, store=isinstance(response, Response))


class CappedLimitOffsetPagination(pagination.LimitOffsetPagination):
    """`?limit=&offset=`, 50 by default, never more than 100 per page; anything else is a 400."""

    default_limit = 50
    max_limit = 100
    max_offset = 10**9  # far beyond any list; keeps OFFSET within every database's integer

    def get_limit(self, request) -> int:
        """More than max_limit gives max_limit (as DRF does); below 1 or not a number is a 400."""
        return min(self._number(request, self.limit_query_param, 1, self.default_limit), self.max_limit)

    def get_offset(self, request) -> int:
        offset = self._number(request, self.offset_query_param, 0, 0)
        if offset > self.max_offset:
            raise serializers.ValidationError({self.offset_query_param: [f"At most {self.max_offset}."]})
        return offset

    @staticmethod
    def _number(request, name: str, low: int, default: int) -> int:
        raw = request.query_params.get(name)
        if raw is None:
            return default
        if not (raw.isascii() and raw.isdigit()) or int(raw) < low:
            raise serializers.ValidationError({name: [f"Enter a whole number, {low} or more."]})
        return int(raw)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.limit_query_param:
                parameter["description"] = (
                    f"Results per page: {self.default_limit} by default, at most {self.max_limit}."
                )
                parameter["schema"].update(minimum=1)  # more is allowed, and answered with max_limit
            else:
                parameter["schema"].update(minimum=0, maximum=self.max_offset)
        return parameters


# --- Cursor pagination ---------------------------------------------------------------------------


# Every ordering ends with a unique column, so a position in it is exact; each has an index.
class KeysetCursorPagination(pagination.BasePagination):
    """Opaque `next`/`previous` cursors that remember the position of the last picture seen.

    Unlike offsets, a page costs the same on page 1 and page 2,000, and pictures added while a
    client pages do not shift what it sees. Unlike DRF's CursorPagination, the position holds
    every ordering column, so orderings with many ties (likes) stay exact and fast.
    """

    # A subclass names its orderings: {name: columns}, each ending with a unique column so a
    # position in it is exact (and each with an index); and which columns hold datetimes.
    orderings: dict[str, tuple[str, ...]] = {}
    datetime_columns: frozenset[str] = frozenset()
    default_page_size = 50
    max_page_size = 100
    default_ordering = ""
    ordering_description = ""

    def paginate_queryset(self, queryset, request, view=None):
        self.request = request
        self.ordering = self._ordering(request)
        self.page_size = self._page_size(request)
        cursor = self._decode(request.query_params.get("cursor"))
        columns = self.orderings[self.ordering]
        reverse = bool(cursor and cursor["reverse"])
        if cursor is not None:
            queryset = queryset.filter(self._beyond(columns, cursor["position"], reverse, cursor["inclusive"]))
        order = [_flip(column) for column in columns] if reverse else list(columns)
        rows = list(queryset.order_by(*order)[: self.page_size + 1])
        more = len(rows) > self.page_size
        rows = rows[: self.page_size]
        if reverse:
            rows.reverse()
            self.has_next, self.has_previous = True, more
        else:
            self.has_next, self.has_previous = more, cursor is not None
        if rows:
            self.previous_position = self._position(rows[0], columns)
            self.next_position = self._position(rows[-1], columns)
            self.inclusive = False
        elif cursor is not None:
            # Nothing beyond the cursor (what was there got deleted): the way back starts at the
            # cursor's own position, this time including it.
            self.previous_position = self.next_position = [_json(value) for value in cursor["position"]]
            self.inclusive = True
            self.has_next, self.has_previous = reverse, not reverse
        return rows

    def get_paginated_response(self, data):
        return Response({"next": self._link(False), "previous": self._link(True), "results": data})

    def _link(self, backwards: bool) -> str | None:
        if not (self.has_previous if backwards else self.has_next):
            return None
        position = self.previous_position if backwards else self.next_position
        if position is None:
            return None
        cursor = {"o": self.ordering, "p": position, "r": int(backwards), "i": int(self.inclusive)}
        token = base64.urlsafe_b64encode(json.dumps(cursor, separators=(",", ":")).encode()).decode().rstrip("=")
        return replace_query_param(self.request.build_absolute_uri(), "cursor", token)

    # Parsing the query string: every bad value is a 400 naming the parameter.

    def _ordering(self, request) -> str:
        ordering = request.query_params.get("ordering") or self.default_ordering
        if ordering not in self.orderings:
            raise ValidationError({"ordering": [f"Choose one of: {', '.join(self.orderings)}."]})
        return ordering

    def _page_size(self, request) -> int:
        raw = request.query_params.get("page_size")
        if raw is None:
            return self.default_page_size
        if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= self.max_page_size:
            raise ValidationError({"page_size": [f"Enter a whole number from 1 to {self.max_page_size}."]})
        return int(raw)

    def _decode(self, raw: str | None) -> dict | None:
        if not raw:
            return None
        invalid = ValidationError({"cursor": ["This cursor is invalid: use the next and previous links as given."]})
        try:
            data = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
            ordering, position, reverse, inclusive = data["o"], data["p"], data["r"], data["i"]
        except (ValueError, TypeError, KeyError, binascii.Error):
            raise invalid from None
        if ordering != self.ordering:
            raise ValidationError({"cursor": ["This cursor belongs to another ordering: start again from page one."]})
        columns = self.orderings[ordering]
        if not isinstance(position, list) or len(position) != len(columns):
            raise invalid
        values = []
        for column, value in zip(columns, position, strict=True):
            name = column.lstrip("-")
            if name in self.datetime_columns:
                try:
                    parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
                except ValueError:
                    parsed = None
                if parsed is None or parsed.tzinfo is None or not in_utc_range(parsed):
                    raise invalid
                values.append(parsed)
            elif isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63:
                values.append(value)
            else:
                raise invalid
        return {"position": values, "reverse": bool(reverse), "inclusive": bool(inclusive)}

    @staticmethod
    def _position(row: dict, columns: tuple[str, ...]) -> list:
        return [_json(row[column.lstrip("-")]) for column in columns]

    @staticmethod
    def _beyond(columns: tuple[str, ...], position: list, reverse: bool, inclusive: bool) -> Q:
        """Rows after `position` in the ordering (before it when `reverse`), as a keyset condition.

        (a, b, c) after (x, y, z) is: a beyond x, or a = x and b beyond y, or a = x, b = y and c
        beyond z. The extra "a beyond or equal to x" lets the database seek the index to x.
        """
        names = [column.lstrip("-") for column in columns]
        lookups = []
        for column in columns:
            descending = column.startswith("-") != reverse
            lookups.append("lt" if descending else "gt")
        terms = []
        for index, name in enumerate(names):
            equal = {names[before]: position[before] for before in range(index)}
            lookup = lookups[index]
            if inclusive and index == len(names) - 1:
                lookup += "e"
            terms.append(Q(**equal, **{f"{name}__{lookup}": position[index]}))
        seek = Q(**{f"{names[0]}__{lookups[0]}e": position[0]})
        return seek & reduce(or_, terms)

    # The schema.

    def get_paginated_response_schema(self, schema):
        return {
            "type": "object",
            "required": ["next", "previous", "results"],
            "properties": {
                "next": {"type": "string", "format": "uri", "nullable": True, "description": "The next page."},
                "previous": {"type": "string", "format": "uri", "nullable": True, "description": "The one before."},
                "results": schema,
            },
        }

    def get_schema_operation_parameters(self, view):
        return [
            {
                "name": "cursor",
                "in": "query",
                "required": False,
                "description": "A position from a `next` or `previous` link (opaque).",
                "schema": {"type": "string"},
            },
            {
                "name": "page_size",
                "in": "query",
                "required": False,
                "description": f"Pictures per page: 1 to {self.max_page_size}, {self.default_page_size} by default.",
                "schema": {"type": "integer", "minimum": 1, "maximum": self.max_page_size},
            },
            {
                "name": "ordering",
                "in": "query",
                "required": False,
                "description": self.ordering_description,
                "schema": {"type": "string", "enum": list(self.orderings), "default": self.default_ordering},
            },
        ]


def _json(value: object) -> object:
    return value.isoformat() if isinstance(value, datetime) else value


def _flip(column: str) -> str:
    return column[1:] if column.startswith("-") else f"-{column}"
