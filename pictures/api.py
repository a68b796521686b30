"""Pictures in the REST API: an album's pictures (cursor pages), its most liked, its authors, one picture.

Hidden and pending pictures never appear: every queryset starts from `Picture.objects.visible()`.
The list is the API's hot path (slideshows, infinite scroll, exports): it reads only the columns
it shows, in one query per page whatever the album's size, along an index for every ordering
(pictures/models.py), and builds each picture's JSON by hand (see PictureSerializer).
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from urllib.parse import urlencode

import django_filters
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Count, Max, QuerySet
from django.http import HttpResponse
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import generics, mixins, serializers, viewsets
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response

from albums.access import link_key, request_key
from albums.api import HASHTAG_PARAMETER, KEY_PARAMETER, album_for_request, link
from albums.hashtags import normalize_hashtag
from albums.models import Album
from everhash.lib.api import (
    CappedLimitOffsetPagination,
    ConditionalGetMixin,
    KeysetCursorPagination,
    errors,
    media_urls,
    origin,
)
from everhash.lib.apiparams import StrictIsoDateTimeFilter, integer_schema
from everhash.lib.caching import cache_key
from pictures.models import Picture, Source
from pictures.storage import signed_url_window

# The columns a picture's JSON needs (not the post text, histogram or hashes).
PICTURE_COLUMNS = (
    "id",
    "album_id",
    "source",
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
    source = serializers.ChoiceField(
        choices=Source.choices, help_text="The network of the post: x, mastodon, bluesky (or sample)."
    )
    post_id = serializers.CharField(
        help_text="The post's id on its network (a string: X ids exceed 53 bits; Mastodon and Bluesky ids are URIs)."
    )
    permalink = serializers.URLField(help_text="The post on the platform.")
    author_handle = serializers.CharField(help_text="Without @; user@instance on Mastodon.")
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
            "source": row["source"],
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
            "original": {"url": links.original(row["id"]), "width": width, "height": height},
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
        self._original = origin(request) + reverse("pictures:picture-original", args=[0]).removesuffix("0/original")
        key = link_key(request, album)
        self._query = f"?{urlencode({'key': key})}" if key else ""

    def picture(self, pk: int) -> str:
        return f"{self._api}{pk}/{self._query}"

    def original(self, pk: int) -> str:
        """The access-checked address of an original (pictures.views.original): never the storage's."""
        return f"{self._original}{pk}/original{self._query}"


# --- Cursor pagination ---------------------------------------------------------------------------

ORDERINGS: dict[str, tuple[str, ...]] = {
    "newest": ("-added_at", "-id"),
    "oldest": ("added_at", "id"),
    "most_liked": ("-like_count", "-added_at", "-id"),
    "newest_posted": ("-posted_at", "-id"),
    "oldest_posted": ("posted_at", "id"),
}


class PictureCursorPagination(KeysetCursorPagination):
    orderings = ORDERINGS
    datetime_columns = frozenset({"added_at", "posted_at"})
    default_ordering = "newest"
    ordering_description = "newest (added; the default), oldest (added), most_liked, newest_posted, oldest_posted."


# --- Filters ---------------------------------------------------------------------------------------


class PictureFilter(django_filters.FilterSet):
    source = django_filters.ChoiceFilter(choices=Source.choices, help_text="Only pictures from this network.")
    author = django_filters.CharFilter(
        method="filter_author", help_text="An author's handle, with or without @, in any case."
    )
    posted_after = StrictIsoDateTimeFilter(
        field_name="posted_at", lookup_expr="gte", help_text="Posted at or after this time (ISO 8601)."
    )
    posted_before = StrictIsoDateTimeFilter(
        field_name="posted_at", lookup_expr="lt", help_text="Posted before this time (ISO 8601)."
    )
    added_after = StrictIsoDateTimeFilter(
        field_name="added_at", lookup_expr="gte", help_text="Added at or after this time (ISO 8601)."
    )
    added_before = StrictIsoDateTimeFilter(
        field_name="added_at", lookup_expr="lt", help_text="Added before this time (ISO 8601)."
    )

    class Meta:
        model = Picture
        fields = ["source", "author", "posted_after", "posted_before", "added_after", "added_before"]

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
        self.page_cache_key = None
        if settings.EVERHASH_API_CACHE_SECONDS <= 0 or request.accepted_renderer.format != "json":
            return None
        try:
            hashtag = normalize_hashtag(self.kwargs["hashtag"])
        except DjangoValidationError:
            return None  # the view answers with the reason
        album = (
            Album.objects.only("visibility", "secret", "owner_id", "pictures_version").filter(hashtag=hashtag).first()
        )
        if album is None:
            return None
        url = origin(request) + request.get_full_path()
        # The window of signed media URLs too: a cached page never outlives the URLs it embeds.
        self.page_cache_key = cache_key("api:page", album.pictures_version, signed_url_window(), url)
        self.page_cache_seconds = settings.EVERHASH_API_CACHE_SECONDS
        if not album.can_see(request.user, request_key(request)):
            return None  # the view answers 404
        body = cache.get(self.page_cache_key)
        if body is None:
            return None
        return HttpResponse(body, content_type="application/json")


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
    pagination_class = PictureCursorPagination
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
            OpenApiParameter(
                "limit", integer_schema(minimum=1, maximum=50), description="How many: 1 to 50, 7 by default."
            ),
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
        albums = Album.objects.visible_to(self.request.user, key=request_key(self.request)).values("id")
        return Picture.objects.visible().filter(album__in=albums).select_related("album")

    def get_object(self) -> Picture:
        try:
            return self.get_queryset().get(pk=self.kwargs["pk"])
        except Picture.DoesNotExist:
            raise NotFound("No such picture, or not one you may see.") from None
