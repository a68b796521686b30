"""Fetch status in the REST API: how an album's fetching goes, for its owner (and staff)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import exceptions, generics, permissions, serializers
from rest_framework.response import Response

from albums.api import HASHTAG_PARAMETER, KEY_PARAMETER, album_for_request
from albums.models import Album
from everhash.lib.api import errors
from everhash.lib.apiparams import integer_schema
from tweets.models import AlbumSource, FetchRun, PendingMedia


class FetchRunSerializer(serializers.ModelSerializer):
    ok = serializers.BooleanField(read_only=True, help_text="Finished without an error.")

    class Meta:
        model = FetchRun
        fields = [
            "started",
            "finished",
            "status",
            "ok",
            "backfill",
            "requests_made",
            "posts_seen",
            "pictures_added",
            "duplicates",
            "rejected",
            "skipped",
            "error",
            "rejections",
        ]
        read_only_fields = fields


class PendingPhotoSerializer(serializers.ModelSerializer):
    post = serializers.CharField(source="post.permalink", help_text="The post the photo belongs to.")

    class Meta:
        model = PendingMedia
        fields = ["media_key", "post", "attempts", "reason", "message", "created", "next_attempt_at"]
        read_only_fields = fields


class AlbumSourceSerializer(serializers.ModelSerializer):
    label = serializers.CharField(help_text="What owners read: X, mastodon.social, bsky.social.")
    summary = serializers.CharField(help_text="The last search and what came back, in plain words.")

    class Meta:
        model = AlbumSource
        fields = [
            "key",
            "label",
            "enabled",
            "summary",
            "last_fetch_at",
            "last_success_at",
            "last_status",
            "last_posts",
            "last_added",
            "last_error",
            "failures",
            "next_fetch_at",
            "rate_limited_until",
            "backfill_done",
        ]
        read_only_fields = fields


class FetchStatusSerializer(serializers.ModelSerializer):
    fetching_active = serializers.BooleanField(source="is_active", help_text="Whether new posts are fetched.")
    runs = FetchRunSerializer(many=True, source="recent_runs", help_text="The most recent runs, newest first.")
    sources = AlbumSourceSerializer(
        many=True, help_text="Each source of the album: on or off, its last search and what came back."
    )
    pending_photos = PendingPhotoSerializer(
        many=True,
        source="waiting_photos",
        help_text="Photos whose download failed for a reason that may pass: later runs try again.",
    )

    class Meta:
        model = Album
        fields = [
            "hashtag",
            "fetching_active",
            "last_fetch_at",
            "last_success_at",
            "next_fetch_at",
            "failures",
            "last_error",
            "last_error_at",
            "sources",
            "pending_photos",
            "runs",
        ]
        read_only_fields = fields


RUNS = serializers.IntegerField(min_value=1, max_value=100)


@extend_schema_view(
    get=extend_schema(
        summary="An album's fetch status (owner or staff)",
        description="Where fetching stands, and the most recent runs with their counts and errors.",
        parameters=[
            HASHTAG_PARAMETER,
            KEY_PARAMETER,
            OpenApiParameter(
                "runs",
                integer_schema(minimum=1, maximum=100),
                description="How many recent runs: 1 to 100, 20 by default.",
            ),
        ],
        responses={200: FetchStatusSerializer, **errors(400, 401, 403, 404)},
    )
)
class AlbumFetchStatus(generics.GenericAPIView):
    serializer_class = FetchStatusSerializer
    permission_classes = [permissions.IsAuthenticated]
    filter_backends = []
    default_runs = 20

    def get(self, request, hashtag: str):
        album = album_for_request(request, hashtag)
        if not album.can_manage(request.user):
            raise exceptions.PermissionDenied("Only the album's owner (or staff) can see its fetch status.")
        raw = request.query_params.get("runs")
        try:
            count = self.default_runs if raw is None else RUNS.run_validation(raw)
        except serializers.ValidationError as exc:
            raise serializers.ValidationError({"runs": exc.detail}) from None
        album.recent_runs = list(FetchRun.objects.filter(album=album).order_by("-started", "-id")[:count])
        album.waiting_photos = list(PendingMedia.objects.waiting().filter(album=album)[:100])
        return Response(self.get_serializer(album).data)
