"""Albums in the REST API, and what every resource of the API shares.

Shared: who may see an album (`visible_albums`, `album_for_request`), the `ETag`/304 mixin, the
page-size cap of offset pagination, the error shapes documented in the schema. The pictures and
fetch-status endpoints (pictures/api.py, tweets/api.py) build on these.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import urlencode

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.files.storage import FileSystemStorage, storages
from django.db import IntegrityError, transaction
from django.db.models import Count, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils.cache import get_conditional_response, patch_vary_headers, set_response_etag
from django.utils.encoding import filepath_to_uri
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import exceptions, mixins, pagination, permissions, serializers, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from albums.hashtags import normalize_hashtag
from albums.models import Album, Milestone
from albums.services import delete_album
from pictures.models import Picture

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
    403: "Signed in, but only the album's owner (or staff) may do this.",
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


# --- Who may see an album ---------------------------------------------------------------------

KEY_PARAMETER = OpenApiParameter(
    "key", OpenApiTypes.STR, description="The secret link token of an unlisted album (as in its share link)."
)
HASHTAG_PARAMETER = OpenApiParameter(
    "hashtag",
    OpenApiTypes.STR,
    OpenApiParameter.PATH,
    description="The album's hashtag, with or without `#` (URL-encoded), in any case: `Sunset` is `sunset`.",
    examples=[OpenApiExample("The demo album of `make run`", value="everhashdemo")],
)


def canonical_hashtag_or_404(raw: str) -> str:
    """The stored form of a hashtag from a URL; a 404 saying why when it cannot be one."""
    try:
        return normalize_hashtag(raw)
    except DjangoValidationError as exc:
        raise exceptions.NotFound(f"This is not a hashtag: {' '.join(exc.messages)}") from None


def visible_albums(request: Request, queryset: QuerySet[Album] | None = None) -> QuerySet[Album]:
    """The albums the caller may open: public ones, their own, any for staff, an unlisted one with its key."""
    queryset = Album.objects.all() if queryset is None else queryset
    user = request.user
    if user.is_authenticated and user.is_staff:
        return queryset
    rule = Q(visibility=Album.Visibility.PUBLIC)
    if user.is_authenticated:
        rule |= Q(owner=user)
    key = request.query_params.get("key")
    if key:
        rule |= Q(secret=key)
    return queryset.filter(rule)


def may_see(request: Request, *, visibility: str, secret: str, owner_id: int) -> bool:
    """The rule of visible_albums() for one album's facts (for a cached page: see pictures/api.py)."""
    user = request.user
    if visibility == Album.Visibility.PUBLIC or (user.is_authenticated and (user.is_staff or user.pk == owner_id)):
        return True
    key = request.query_params.get("key")
    return bool(key) and key == secret


def album_for_request(request: Request, hashtag: str, queryset: QuerySet[Album] | None = None) -> Album:
    """The album of a URL's hashtag if the caller may see it, else a 404 (strangers learn nothing)."""
    canonical = canonical_hashtag_or_404(hashtag)
    try:
        return visible_albums(request, queryset).get(hashtag=canonical)
    except Album.DoesNotExist:
        raise exceptions.NotFound("No album for this hashtag, or not one you may see.") from None


def can_edit(request: Request, album: Album) -> bool:
    user = request.user
    return bool(user.is_authenticated and (user.is_staff or album.owner_id == user.pk))


def album_key(request: Request, album: Album) -> str | None:
    """The unlisted album's key when the caller came with it (links then carry it on)."""
    key = request.query_params.get("key")
    if key and album.visibility != Album.Visibility.PUBLIC and key == album.secret:
        return key
    return None


def origin(request: Request) -> str:
    """`scheme://host` of the request, computed once per request."""
    value = getattr(request, "_everhash_origin", None)
    if value is None:
        value = request._everhash_origin = request.build_absolute_uri("/")[:-1]
    return value


def link(request: Request, path: str, album: Album, **params: object) -> str:
    """An absolute API link; it carries the album's key when the caller came with it."""
    params["key"] = album_key(request, album)
    query = urlencode({name: value for name, value in params.items() if value is not None})
    return origin(request) + path + (f"?{query}" if query else "")


_URL_SAFE = re.compile(r"[A-Za-z0-9/._~-]*\Z").match


def media_urls(request: Request) -> Callable[[str], str]:
    """A function giving the absolute URL of a stored file (storage URLs may be relative: /media/...).

    For a local folder it adds the quoted key to the base URL computed once, which is what
    FileSystemStorage.url() returns for our keys without its urljoin(): a page of 50 pictures
    has 250 image URLs. Other storages (S3) build each URL themselves.
    """
    storage = storages["default"]
    if isinstance(storage, FileSystemStorage):
        base = storage.base_url
        prefix = origin(request) + base if base.startswith("/") else base

        def local(key: str) -> str:
            # Our keys (hex digests, names) need no quoting; checking is cheaper than quoting.
            return prefix + (key if _URL_SAFE(key) else filepath_to_uri(key)).lstrip("/")

        return local

    def url(key: str) -> str:
        value = storage.url(key)
        return origin(request) + value if value.startswith("/") else value

    return url


def media_url(request: Request, key: str) -> str:
    return media_urls(request)(key)


# --- Shared view behaviour -----------------------------------------------------------------------


class ConditionalGetMixin:
    """`ETag` from the response body and `304 Not Modified` for a matching `If-None-Match`.

    Hashing the rendered body costs microseconds and is always right: any change a client could
    see (a new picture, a new like count, a renamed album) changes the tag.
    """

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        if request.method not in ("GET", "HEAD") or response.status_code != 200:
            return response
        if hasattr(response, "render"):
            response.render()
        set_response_etag(response)
        # What a caller sees depends on who they are (their own albums, unlisted ones).
        patch_vary_headers(response, ["Authorization", "Cookie"])
        return get_conditional_response(request, etag=response.get("ETag"), response=response)


class CappedLimitOffsetPagination(pagination.LimitOffsetPagination):
    """`?limit=&offset=`, 50 by default, never more than 100 per page."""

    default_limit = 50
    max_limit = 100

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.limit_query_param:
                parameter["description"] = (
                    f"Results per page: {self.default_limit} by default, at most {self.max_limit}."
                )
                parameter["schema"].update(minimum=1)
            else:
                parameter["schema"].update(minimum=0)
        return parameters


class IsOwnerOrStaffForWrites(permissions.BasePermission):
    message = "Only the album's owner (or staff) can change it."

    def has_object_permission(self, request, view, obj) -> bool:
        return request.method in permissions.SAFE_METHODS or can_edit(request, obj)


# --- Albums ----------------------------------------------------------------------------------------


class AlbumSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField(help_text="This album in the API.")
    page_url = serializers.SerializerMethodField(help_text="The album's page on the site.")
    pictures_url = serializers.SerializerMethodField(help_text="Its pictures, newest first.")
    fetching_active = serializers.BooleanField(
        source="is_active", required=False, help_text="Whether new posts are fetched (the owner can pause it)."
    )
    picture_count = serializers.IntegerField(read_only=True, help_text="Visible pictures.")
    author_count = serializers.IntegerField(read_only=True, help_text="Authors of visible pictures.")
    cover_url = serializers.SerializerMethodField(help_text="The collage (1200x630), once one is built.")
    cover_square_url = serializers.SerializerMethodField(help_text="The square collage, once one is built.")
    milestones = serializers.SerializerMethodField(help_text="Picture counts the album has reached (100, 200...).")
    next_fetch_at = serializers.SerializerMethodField(
        help_text="When the next fetch is due (null: at the next run, or never while fetching is paused)."
    )
    can_edit = serializers.SerializerMethodField(help_text="Whether you may change or delete this album.")

    class Meta:
        model = Album
        fields = [
            "hashtag",
            "url",
            "page_url",
            "pictures_url",
            "title",
            "description",
            "visibility",
            "fetching_active",
            "created",
            "picture_count",
            "author_count",
            "cover_url",
            "cover_square_url",
            "milestones",
            "last_fetch_at",
            "next_fetch_at",
            "can_edit",
        ]
        read_only_fields = ["hashtag", "created", "last_fetch_at"]

    @extend_schema_field(serializers.URLField())
    def get_url(self, album: Album) -> str:
        return link(self.context["request"], reverse("api:album-detail", args=[album.hashtag]), album)

    @extend_schema_field(serializers.URLField())
    def get_page_url(self, album: Album) -> str:
        return link(self.context["request"], album.get_absolute_url(), album)

    @extend_schema_field(serializers.URLField())
    def get_pictures_url(self, album: Album) -> str:
        return link(self.context["request"], reverse("api:album-pictures", args=[album.hashtag]), album)

    def _collage_url(self, album: Album, attribute: str) -> str | None:
        collage = getattr(album, "collage", None)  # select_related: None when there is none
        key = getattr(collage, attribute, "") if collage else ""
        return media_url(self.context["request"], key) if key else None

    @extend_schema_field(serializers.URLField(allow_null=True))
    def get_cover_url(self, album: Album) -> str | None:
        return self._collage_url(album, "image_key")

    @extend_schema_field(serializers.URLField(allow_null=True))
    def get_cover_square_url(self, album: Album) -> str | None:
        return self._collage_url(album, "square_key")

    def get_milestones(self, album: Album) -> list[int]:
        return [milestone.threshold for milestone in album.milestones.all()]

    @extend_schema_field(serializers.DateTimeField(allow_null=True))
    def get_next_fetch_at(self, album: Album) -> str | None:
        if not album.is_active or album.next_fetch_at is None:
            return None
        return serializers.DateTimeField().to_representation(album.next_fetch_at)

    def get_can_edit(self, album: Album) -> bool:
        return can_edit(self.context["request"], album)


class AlbumCreateSerializer(AlbumSerializer):
    hashtag = serializers.CharField(
        max_length=200, help_text="The hashtag to collect, with or without `#`; stored case-folded (`#Sunset`: sunset)."
    )

    class Meta(AlbumSerializer.Meta):
        read_only_fields = ["created", "last_fetch_at"]

    def validate_hashtag(self, value: str) -> str:
        try:
            return normalize_hashtag(value)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from None


def with_counts(queryset: QuerySet[Album]) -> QuerySet[Album]:
    """Everything AlbumSerializer shows, in two queries for any number of albums and pictures."""
    visible = Picture.objects.filter(album=OuterRef("pk"), status=Picture.Status.VISIBLE).values("album")
    return (
        queryset.select_related("collage")
        .prefetch_related(Prefetch("milestones", queryset=Milestone.objects.order_by("threshold")))
        .annotate(
            picture_count=Coalesce(Subquery(visible.annotate(n=Count("*")).values("n")), 0),
            author_count=Coalesce(Subquery(visible.annotate(n=Count("author_handle", distinct=True)).values("n")), 0),
        )
    )


MINE_PARAMETER = OpenApiParameter(
    "mine", OpenApiTypes.BOOL, description="Only your own albums (public and unlisted). Needs you signed in."
)


@extend_schema_view(
    list=extend_schema(
        summary="Public albums, and your own",
        description="Public albums and, when you are signed in, your own unlisted ones; by hashtag.",
        parameters=[MINE_PARAMETER],
        responses={200: AlbumSerializer(many=True), **errors(400, 401)},
    ),
    retrieve=extend_schema(
        summary="An album",
        parameters=[HASHTAG_PARAMETER, KEY_PARAMETER],
        responses={200: AlbumSerializer, **errors(404)},
    ),
    create=extend_schema(
        summary="Create an album for a hashtag",
        description="You become its owner; its first fetch is due at once.",
        request=AlbumCreateSerializer,
        responses={201: AlbumSerializer, **errors(400, 401, 409)},
    ),
    partial_update=extend_schema(
        summary="Change an album (owner or staff)",
        parameters=[HASHTAG_PARAMETER, KEY_PARAMETER],
        responses={200: AlbumSerializer, **errors(400, 401, 403, 404)},
    ),
    destroy=extend_schema(
        summary="Delete an album with its pictures (owner or staff)",
        parameters=[HASHTAG_PARAMETER, KEY_PARAMETER],
        responses={204: None, **errors(401, 403, 404)},
    ),
)
class AlbumViewSet(
    ConditionalGetMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    # PATCH changes only what it sends; there is no PUT.
    serializer_class = AlbumSerializer
    lookup_field = "hashtag"
    lookup_value_regex = "[^/]+"
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    permission_classes = [permissions.IsAuthenticatedOrReadOnly, IsOwnerOrStaffForWrites]
    pagination_class = CappedLimitOffsetPagination
    filter_backends = []

    def get_serializer_class(self):
        return AlbumCreateSerializer if self.action == "create" else AlbumSerializer

    def get_queryset(self) -> QuerySet[Album]:
        queryset = with_counts(Album.objects.all())
        if self.action != "list":
            return visible_albums(self.request, queryset)
        user = self.request.user
        if self._mine():
            if not user.is_authenticated:
                raise exceptions.NotAuthenticated("Sign in to list your own albums.")
            return queryset.filter(owner=user).order_by("hashtag")
        # Never unlisted albums of others, not even to staff or with a key: they are not listed.
        rule = Q(visibility=Album.Visibility.PUBLIC)
        if user.is_authenticated:
            rule |= Q(owner=user)
        return queryset.filter(rule).order_by("hashtag")

    def _mine(self) -> bool:
        raw = self.request.query_params.get("mine")
        if raw is None:
            return False
        try:
            return serializers.BooleanField().to_internal_value(raw)
        except serializers.ValidationError as exc:
            raise serializers.ValidationError({"mine": exc.detail}) from None

    def get_object(self) -> Album:
        album = album_for_request(self.request, self.kwargs["hashtag"], self.get_queryset())
        self.check_object_permissions(self.request, album)
        return album

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        hashtag = serializer.validated_data["hashtag"]
        if Album.objects.filter(hashtag=hashtag).exists():
            return self._exists(hashtag)
        try:
            with transaction.atomic():
                self.perform_create(serializer)
        except IntegrityError:
            return self._exists(hashtag)  # created by someone else in the meantime
        album = with_counts(Album.objects.filter(pk=serializer.instance.pk)).get()
        data = AlbumSerializer(album, context=self.get_serializer_context()).data
        return Response(data, status=status.HTTP_201_CREATED, headers={"Location": data["url"]})

    def perform_create(self, serializer: AlbumCreateSerializer) -> None:
        # Owned by the caller; next_fetch_at stays empty: the next fetch_tweets run takes it.
        serializer.save(owner=self.request.user)

    def _exists(self, hashtag: str) -> Response:
        """409 saying where the album is (when the caller may see it)."""
        existing = visible_albums(self.request).filter(hashtag=hashtag).first()
        if existing is None:
            detail = f"An album for #{hashtag} already exists (someone else's, unlisted)."
            where = None
        else:
            whose = "You already have" if existing.owner_id == self.request.user.pk else "There is already"
            detail = f"{whose} an album for #{hashtag}: its URL is in album."
            where = link(self.request, reverse("api:album-detail", args=[hashtag]), existing)
        return Response({"detail": detail, "album": where}, status=status.HTTP_409_CONFLICT)

    def perform_destroy(self, instance: Album) -> None:
        delete_album(album=instance)
