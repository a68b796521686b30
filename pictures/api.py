"""Pictures in the REST API: an album's pictures (cursor pages), its most liked, its authors, one picture.

Hidden and pending pictures never appear: every queryset starts from `Picture.objects.visible()`.
The list is the API's hot path (slideshows, infinite scroll, exports): it reads only the columns
it shows, in one query per page whatever the album's size, along an index for every ordering
(pictures/models.py), and builds each picture's JSON by hand (see PictureSerializer).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from datetime import datetime, tzinfo
from functools import reduce
from operator import or_
from urllib.parse import urlencode

import django_filters
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Count, Max, Q, QuerySet
from django.http import HttpResponse
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import generics, mixins, pagination, serializers, viewsets
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

from albums.api import (
    HASHTAG_PARAMETER,
    KEY_PARAMETER,
    CappedLimitOffsetPagination,
    ConditionalGetMixin,
    album_for_request,
    album_key,
    errors,
    link,
    may_see,
    media_urls,
    origin,
    visible_albums,
)
from albums.hashtags import normalize_hashtag
from albums.models import Album
from pictures.models import Picture
from pictures.storage import signed_url_window

# The columns a picture's JSON needs (not the post text, histogram or hashes).
PICTURE_COLUMNS = (
    "id",
    "album_id",
    "post_id",
    "permalink",
    "author_handle",
    "author_name",
    "like_count",
    "posted_at",
    "added_at",
    "alt_text",
    "width",
    "height",
    "original_key",
    "renditions",
)
RENDITION_NAMES = ("thumb", "square", "medium", "large")


class ImageSerializer(serializers.Serializer):
    url = serializers.URLField(help_text="Absolute URL of the image file.")
    width = serializers.IntegerField()
    height = serializers.IntegerField()


class RenditionsSerializer(serializers.Serializer):
    """Every rendition that exists (all four for pictures stored by everhash)."""

    thumb = ImageSerializer(required=False, help_text="200x200, cropped to a square.")
    square = ImageSerializer(required=False, help_text="400x400, cropped to a square.")
    medium = ImageSerializer(required=False, help_text="Fits in 1024x1024.")
    large = ImageSerializer(required=False, help_text="Fits in 2048x2048.")


def _datetime(value: datetime, zone: tzinfo) -> str:
    """Like DRF's DateTimeField: in the current time zone, UTC written as Z."""
    text = value.astimezone(zone).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


class PictureSerializer(serializers.Serializer):
    """A visible picture, with absolute URLs of its original and of every rendition."""

    # The declared fields describe a picture (schema, docs); to_representation builds it: a
    # dictionary built directly is several times faster than DRF's field-by-field path on a page
    # of 50. The schema fuzzing test checks every response against these declarations.

    id = serializers.IntegerField()
    url = serializers.URLField(help_text="This picture in the API.")
    album = serializers.CharField(help_text="The album's hashtag.")
    post_id = serializers.CharField(help_text="The post's id on the platform (a string: ids exceed 53 bits).")
    permalink = serializers.URLField(help_text="The post on the platform.")
    author_handle = serializers.CharField(help_text="Without @.")
    author_name = serializers.CharField()
    like_count = serializers.IntegerField(help_text="Likes of the post at the last fetch.")
    posted_at = serializers.DateTimeField(help_text="When the post was published.")
    added_at = serializers.DateTimeField(help_text="When everhash stored the picture.")
    alt_text = serializers.CharField(help_text="The author's description of the image (may be empty).")
    width = serializers.IntegerField(help_text="Of the original, in pixels.")
    height = serializers.IntegerField(help_text="Of the original, in pixels.")
    original = ImageSerializer(help_text="The file as downloaded.")
    renditions = RenditionsSerializer()

    def to_representation(self, picture: Picture | dict) -> dict:
        row = picture if isinstance(picture, dict) else {column: getattr(picture, column) for column in PICTURE_COLUMNS}
        album = self.context.get("album") or picture.album
        links = self.context.get("links")
        if links is None or links.album is not album:
            links = self.context["links"] = PictureLinks(self.context["request"], album)
        media, zone = links.media, links.zone
        width, height = row["width"], row["height"]
        renditions = row["renditions"] or {}
        return {
            "id": row["id"],
            "url": links.picture(row["id"]),
            "album": album.hashtag,
            "post_id": row["post_id"],
            "permalink": row["permalink"],
            "author_handle": row["author_handle"],
            "author_name": row["author_name"],
            "like_count": row["like_count"],
            "posted_at": _datetime(row["posted_at"], zone),
            "added_at": _datetime(row["added_at"], zone),
            "alt_text": row["alt_text"],
            "width": width,
            "height": height,
            "original": {"url": media(row["original_key"]), "width": width, "height": height},
            "renditions": {
                name: {"url": media(rendition["key"]), "width": rendition["width"], "height": rendition["height"]}
                for name in RENDITION_NAMES
                if (rendition := renditions.get(name))
            },
        }


class PictureLinks:
    """Absolute URLs for the pictures of one album in one request, from prefixes computed once
    (a reverse() per picture costs more than all the rest of its JSON)."""

    def __init__(self, request, album: Album) -> None:
        self.album = album
        self.media = media_urls(request)
        self.zone = timezone.get_current_timezone()
        self._api = origin(request) + reverse("api:picture-detail", args=[0]).removesuffix("0/")
        key = album_key(request, album)
        self._query = f"?{urlencode({'key': key})}" if key else ""

    def picture(self, pk: int) -> str:
        return f"{self._api}{pk}/{self._query}"


# --- Cursor pagination ---------------------------------------------------------------------------

# Every ordering ends with a unique column, so a position in it is exact; each has an index.
ORDERINGS: dict[str, tuple[str, ...]] = {
    "newest": ("-added_at", "-id"),
    "oldest": ("added_at", "id"),
    "most_liked": ("-like_count", "-added_at", "-id"),
    "newest_posted": ("-posted_at", "-id"),
    "oldest_posted": ("posted_at", "id"),
}
DATETIME_COLUMNS = {"added_at", "posted_at"}


class KeysetCursorPagination(pagination.BasePagination):
    """Opaque `next`/`previous` cursors that remember the position of the last picture seen.

    Unlike offsets, a page costs the same on page 1 and page 2,000, and pictures added while a
    client pages do not shift what it sees. Unlike DRF's CursorPagination, the position holds
    every ordering column, so orderings with many ties (likes) stay exact and fast.
    """

    default_page_size = 50
    max_page_size = 100
    default_ordering = "newest"

    def paginate_queryset(self, queryset, request, view=None):
        self.request = request
        self.ordering = self._ordering(request)
        self.page_size = self._page_size(request)
        cursor = self._decode(request.query_params.get("cursor"))
        columns = ORDERINGS[self.ordering]
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
        if ordering not in ORDERINGS:
            raise ValidationError({"ordering": [f"Choose one of: {', '.join(ORDERINGS)}."]})
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
        columns = ORDERINGS[ordering]
        if not isinstance(position, list) or len(position) != len(columns):
            raise invalid
        values = []
        for column, value in zip(columns, position, strict=True):
            name = column.lstrip("-")
            if name in DATETIME_COLUMNS:
                try:
                    parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
                except ValueError:
                    parsed = None
                if parsed is None or parsed.tzinfo is None:
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
                "description": "newest (added; the default), oldest (added), most_liked, newest_posted, oldest_posted.",
                "schema": {"type": "string", "enum": list(ORDERINGS), "default": self.default_ordering},
            },
        ]


def _json(value: object) -> object:
    return value.isoformat() if isinstance(value, datetime) else value


def _flip(column: str) -> str:
    return column[1:] if column.startswith("-") else f"-{column}"


# --- Filters ---------------------------------------------------------------------------------------


class PictureFilter(django_filters.FilterSet):
    author = django_filters.CharFilter(
        method="filter_author", help_text="An author's handle, with or without @, in any case."
    )
    posted_after = django_filters.IsoDateTimeFilter(
        field_name="posted_at", lookup_expr="gte", help_text="Posted at or after this time (ISO 8601)."
    )
    posted_before = django_filters.IsoDateTimeFilter(
        field_name="posted_at", lookup_expr="lt", help_text="Posted before this time (ISO 8601)."
    )
    added_after = django_filters.IsoDateTimeFilter(
        field_name="added_at", lookup_expr="gte", help_text="Added at or after this time (ISO 8601)."
    )
    added_before = django_filters.IsoDateTimeFilter(
        field_name="added_at", lookup_expr="lt", help_text="Added before this time (ISO 8601)."
    )

    class Meta:
        model = Picture
        fields = ["author", "posted_after", "posted_before", "added_after", "added_before"]

    def filter_author(self, queryset: QuerySet[Picture], name: str, value: str) -> QuerySet[Picture]:
        handle = value.strip().removeprefix("@")
        return queryset.filter(author_handle__iexact=handle) if handle else queryset


# --- Views -----------------------------------------------------------------------------------------


class AlbumPicturesMixin:
    """A nested endpoint under /albums/<hashtag>/: the album's visible pictures, or a 404."""

    def get_album(self) -> Album:
        if not hasattr(self, "_album"):
            only = ("id", "hashtag", "visibility", "secret", "owner_id")
            self._album = album_for_request(self.request, self.kwargs["hashtag"], Album.objects.only(*only))
        return self._album

    def album_pictures(self) -> QuerySet[Picture]:
        if getattr(self, "swagger_fake_view", False):  # drf-spectacular inspecting the view
            return Picture.objects.none()
        return Picture.objects.visible().filter(album=self.get_album())

    def get_serializer_context(self) -> dict:
        context = super().get_serializer_context()
        if not getattr(self, "swagger_fake_view", False):
            context["album"] = self.get_album()  # the same for every picture: loaded once
        return context


FILTER_PARAMETERS = frozenset(PictureFilter.base_filters)


class CachedPageMixin:
    """Reuse a rendered page of pictures for the same URL and the same album state.

    Many viewers of one album (a slideshow at an event, an embedded wall, a script polling) ask
    for the same page again and again; from memory it costs a fraction of querying and rendering
    it. The key is the full URL (host, path, query: cursor, filters, ordering, `key`) and the
    album's `pictures_version`, which every change to its pictures bumps (a fetch, a moderation
    action, a deletion): a hidden picture leaves the API at once. One small query reads the
    album's current visibility and version, and the visibility rule is applied to the caller on
    every hit. Entries expire after EVERHASH_API_CACHE_SECONDS (0 turns the cache off).
    """

    def cached_page(self, request) -> HttpResponse | None:
        self._page_key = None
        if settings.EVERHASH_API_CACHE_SECONDS <= 0 or request.accepted_renderer.format != "json":
            return None
        try:
            hashtag = normalize_hashtag(self.kwargs["hashtag"])
        except DjangoValidationError:
            return None  # the view answers with the reason
        facts = (
            Album.objects.filter(hashtag=hashtag).values("visibility", "secret", "owner_id", "pictures_version").first()
        )
        if facts is None:
            return None
        version = facts.pop("pictures_version")
        url = origin(request) + request.get_full_path()
        # The window of signed media URLs too: a cached page never outlives the URLs it embeds.
        window = signed_url_window()
        self._page_key = f"everhash:api:page:{version}:{window}:{hashlib.sha256(url.encode()).hexdigest()}"
        if not may_see(request, **facts):
            return None  # the view answers 404
        body = cache.get(self._page_key)
        if body is None:
            return None
        return HttpResponse(body, content_type="application/json")

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        key = getattr(self, "_page_key", None)
        if key and isinstance(response, Response) and response.status_code == 200:
            response.render()
            cache.set(key, response.content, settings.EVERHASH_API_CACHE_SECONDS)
        return response


@extend_schema_view(
    get=extend_schema(
        summary="An album's pictures",
        description=(
            "Visible pictures, 50 a page (`page_size` up to 100), newest first unless `ordering` says "
            "otherwise. Follow `next` until it is null. Filters combine."
        ),
        parameters=[HASHTAG_PARAMETER, KEY_PARAMETER],
        responses={200: PictureSerializer(many=True), **errors(400, 404)},
    )
)
class AlbumPictureList(ConditionalGetMixin, CachedPageMixin, AlbumPicturesMixin, generics.ListAPIView):
    serializer_class = PictureSerializer
    pagination_class = KeysetCursorPagination
    filterset_class = PictureFilter

    def list(self, request, *args, **kwargs):
        return self.cached_page(request) or super().list(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[Picture]:
        # Rows as dictionaries: building 50 model instances costs more than the query.
        return self.album_pictures().values(*PICTURE_COLUMNS)

    def filter_queryset(self, queryset):
        if FILTER_PARAMETERS.isdisjoint(self.request.query_params):
            return queryset  # no filter asked for: skip building a FilterSet and its form
        return super().filter_queryset(queryset)


POPULAR_LIMIT = serializers.IntegerField(min_value=1, max_value=50)


@extend_schema_view(
    get=extend_schema(
        summary="An album's most liked pictures",
        description="The top `limit` visible pictures by likes (at the last fetch); ties: the newest first.",
        parameters=[
            HASHTAG_PARAMETER,
            KEY_PARAMETER,
            OpenApiParameter("limit", OpenApiTypes.INT, description="How many: 1 to 50, 7 by default."),
        ],
        responses={200: PictureSerializer(many=True), **errors(400, 404)},
    )
)
class AlbumPopularList(ConditionalGetMixin, CachedPageMixin, AlbumPicturesMixin, generics.ListAPIView):
    serializer_class = PictureSerializer
    pagination_class = None
    filter_backends = []
    default_limit = 7

    def list(self, request, *args, **kwargs):
        cached = self.cached_page(request)
        if cached is not None:
            return cached
        raw = request.query_params.get("limit")
        try:
            limit = self.default_limit if raw is None else POPULAR_LIMIT.run_validation(raw)
        except ValidationError as exc:
            raise ValidationError({"limit": exc.detail}) from None
        pictures = self.album_pictures().most_liked().values(*PICTURE_COLUMNS)[:limit]
        return Response(self.get_serializer(pictures, many=True).data)


class AuthorSerializer(serializers.Serializer):
    handle = serializers.CharField(help_text="Without @.")
    name = serializers.CharField()
    picture_count = serializers.IntegerField(help_text="Visible pictures in this album.")
    pictures_url = serializers.URLField(help_text="Their pictures in this album.")


@extend_schema_view(
    get=extend_schema(
        summary="An album's authors",
        description="Everyone with visible pictures in the album, the most pictures first.",
        parameters=[HASHTAG_PARAMETER, KEY_PARAMETER],
        responses={200: AuthorSerializer(many=True), **errors(400, 404)},
    )
)
class AlbumAuthorList(ConditionalGetMixin, AlbumPicturesMixin, generics.ListAPIView):
    pagination_class = CappedLimitOffsetPagination
    filter_backends = []

    def get_queryset(self):
        return (
            self.album_pictures()
            .values("author_handle")
            .annotate(picture_count=Count("id"), name=Max("author_name"))
            .order_by("-picture_count", "author_handle")
        )

    def list(self, request, *args, **kwargs):
        album = self.get_album()
        page = self.paginate_queryset(self.get_queryset())
        path = reverse("api:album-pictures", args=[album.hashtag])
        data = [
            {
                "handle": row["author_handle"],
                "name": row["name"],
                "picture_count": row["picture_count"],
                "pictures_url": link(request, path, album, author=row["author_handle"]),
            }
            for row in page
        ]
        return self.get_paginated_response(data)


@extend_schema_view(
    retrieve=extend_schema(
        summary="A picture",
        parameters=[
            OpenApiParameter("id", OpenApiTypes.INT, OpenApiParameter.PATH, description="The picture's id."),
            KEY_PARAMETER,
        ],
        responses={200: PictureSerializer, **errors(404)},
    )
)
class PictureViewSet(ConditionalGetMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """One visible picture of an album you may see (unlisted: with the album's `?key=`)."""

    serializer_class = PictureSerializer
    lookup_value_regex = r"[0-9]{1,18}"

    def get_queryset(self) -> QuerySet[Picture]:
        albums = visible_albums(self.request).values("id")
        return Picture.objects.visible().filter(album__in=albums).select_related("album")

    def get_object(self) -> Picture:
        try:
            return self.get_queryset().get(pk=self.kwargs["pk"])
        except Picture.DoesNotExist:
            raise NotFound("No such picture, or not one you may see.") from None
