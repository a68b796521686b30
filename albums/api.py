"""Albums in the REST API.

Who may see or change an album is the model's rule (`Album.objects.visible_to()`,
`Album.can_manage()`), applied to a request by albums/access.py; what every resource of the API
shares (error shapes, paginators, media URLs, conditional GET) is in everhash/lib/api.py. The
pictures and fetch-status endpoints (pictures/api.py, tweets/api.py) build on both.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import F, Prefetch, QuerySet
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import exceptions, mixins, permissions, serializers, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from albums import access
from albums.hashtags import normalize_new_hashtag
from albums.models import Album, Milestone
from albums.services import AlbumExists, QuotaReached, create_album
from everhash.lib.api import CappedLimitOffsetPagination, ConditionalGetMixin, errors, media_url, origin
from everhash.lib.apiparams import StrictBooleanField, StrictCharField, StrictModelSerializer
from pictures import moderation
from pictures.models import Picture
from pictures.services import delete_album
from users.services import check_user_rate_limit, wait_message

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


def album_for_request(request: Request, hashtag: str, queryset: QuerySet[Album] | None = None) -> Album:
    """albums.access.album_for_request in the API's words: a 404 that tells strangers nothing."""
    try:
        return access.album_for_request(request, hashtag, queryset)
    except access.NotAHashtag as exc:
        raise exceptions.NotFound(f"This is not a hashtag: {exc.reason}") from None
    except access.AlbumMissing:
        raise exceptions.NotFound("No album for this hashtag, or not one you may see.") from None


def link(request: Request, path: str, album: Album, **params: object) -> str:
    """An absolute API link; it carries the album's key when the caller came with it."""
    params["key"] = access.link_key(request, album)
    query = urlencode({name: value for name, value in params.items() if value is not None})
    return origin(request) + path + (f"?{query}" if query else "")


# --- Shared view behaviour -----------------------------------------------------------------------


class IsOwnerOrStaffForWrites(permissions.BasePermission):
    message = "Only the album's owner (or staff) can change it."

    def has_object_permission(self, request, view, obj) -> bool:
        return request.method in permissions.SAFE_METHODS or obj.can_manage(request.user)


# --- Albums ----------------------------------------------------------------------------------------


class AlbumSerializer(StrictModelSerializer):
    url = serializers.SerializerMethodField(help_text="This album in the API.")
    page_url = serializers.SerializerMethodField(help_text="The album's page on the site.")
    pictures_url = serializers.SerializerMethodField(help_text="Its pictures, newest first.")
    fetching_active = StrictBooleanField(
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
        return album.can_manage(self.context["request"].user)


# What normalize_new_hashtag accepts, as far as a schema can say it: word characters (Python's
# Unicode \w), at least one of them not a digit, with or without "#", at most 100 of them.
@extend_schema_field({"type": "string", "minLength": 1, "maxLength": 101, "pattern": r"^#?\w*[^\W\d]\w*$"})
class HashtagField(StrictCharField):
    pass


class AlbumCreateSerializer(AlbumSerializer):
    hashtag = HashtagField(
        min_length=1,
        max_length=101,
        help_text="The hashtag to collect, with or without `#`; stored case-folded (`#Sunset`: sunset).",
    )

    class Meta(AlbumSerializer.Meta):
        read_only_fields = ["created", "last_fetch_at"]

    def validate_hashtag(self, value: str) -> str:
        try:
            return normalize_new_hashtag(value)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from None


def with_counts(queryset: QuerySet[Album]) -> QuerySet[Album]:
    """Everything AlbumSerializer shows, in two queries for any number of albums and pictures."""
    return (
        queryset.select_related("collage")
        .prefetch_related(Prefetch("milestones", queryset=Milestone.objects.order_by("threshold")))
        .annotate(
            picture_count=F("visible_count"),  # kept on the album
            author_count=Picture.objects.visible_count(distinct="author_handle"),
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
        description=(
            "You become its owner; its first fetch is due at once. An account owns at most "
            "EVERHASH_MAX_ALBUMS_PER_USER albums (20; staff are exempt): past it, 403 saying so. New albums "
            "are limited per account per hour (EVERHASH_NEW_ALBUMS_PER_HOUR): past it, 429 with Retry-After."
        ),
        request=AlbumCreateSerializer,
        responses={201: AlbumSerializer, **errors(400, 401, 403, 409)},
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
            return queryset.visible_to(self.request.user, key=access.request_key(self.request))
        user = self.request.user
        if self._mine():
            if not user.is_authenticated:
                raise exceptions.NotAuthenticated("Sign in to list your own albums.")
            return queryset.filter(owner=user).order_by("hashtag")
        # Never unlisted albums of others, not even to staff or with a key: they are not listed.
        return queryset.listed_for(user).order_by("hashtag")

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
        if wait := check_user_rate_limit(scope="album_create", user=request.user):
            raise exceptions.Throttled(wait=wait, detail=wait_message(wait, what="new albums"))
        fields = {name: value for name, value in serializer.validated_data.items() if name != "hashtag"}
        try:
            # Owned by the caller, searched as written (#Straße), through the one creation rule.
            created = create_album(owner=request.user, hashtag=hashtag, written=request.data["hashtag"], **fields)
        except AlbumExists:
            return self._exists(hashtag)  # created by someone else in the meantime
        except QuotaReached as exc:
            raise exceptions.PermissionDenied(str(exc)) from None
        album = with_counts(Album.objects.filter(pk=created.pk)).get()
        data = AlbumSerializer(album, context=self.get_serializer_context()).data
        return Response(data, status=status.HTTP_201_CREATED, headers={"Location": data["url"]})

    def perform_update(self, serializer: AlbumSerializer) -> None:
        # Pausing and resuming go through the one audited rule, like the dashboard and the admin.
        active = serializer.validated_data.pop("is_active", None)
        serializer.save()
        album = serializer.instance
        if active is not None and active != album.is_active:
            rule = moderation.resume if active else moderation.pause
            rule(albums=Album.objects.filter(pk=album.pk), by=self.request.user)
            album.is_active = active

    def _exists(self, hashtag: str) -> Response:
        """409 saying where the album is (when the caller may see it)."""
        existing = Album.objects.visible_to(self.request.user, key=access.request_key(self.request))
        existing = existing.filter(hashtag=hashtag).first()
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
