"""The REST API's router and URLs under /api/v1/ (see docs/api.md)."""

from __future__ import annotations

from django.http import JsonResponse
from django.urls import path, re_path
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import extend_schema, inline_serializer
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter
from rest_framework.views import APIView

from albums.api import AlbumViewSet
from pictures.api import AlbumAuthorList, AlbumPictureList, AlbumPopularList, PictureViewSet
from tweets.api import AlbumFetchStatus

app_name = "api"


class ApiTokenScheme(OpenApiAuthenticationExtension):
    """Describes users.api.ApiTokenAuthentication in the OpenAPI document."""

    target_class = "users.api.ApiTokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A personal API token from /accounts/tokens/: `Authorization: Bearer <token>` "
            "(`Token <token>` works too).",
        }


class Ping(APIView):
    """The liveness probe: answers without touching the database, never throttled."""

    authentication_classes = []
    permission_classes = []
    throttle_classes = []

    @extend_schema(
        summary="Liveness probe",
        responses={200: inline_serializer("Ping", fields={"ok": serializers.BooleanField()})},
    )
    def get(self, request):
        return Response({"ok": True})


def not_found(request, *args, **kwargs):
    """Unknown paths under /api/v1/ answer in JSON like the rest of the API."""
    return JsonResponse({"detail": "Not found: no such endpoint (see /api/v1/docs/)."}, status=404)


router = SimpleRouter()
router.register("albums", AlbumViewSet, basename="album")
router.register("pictures", PictureViewSet, basename="picture")

HASHTAG = "albums/<str:hashtag>/"

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves its script as a file: the content security policy allows no inline script.
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api:schema"), name="docs"),
    path("ping/", Ping.as_view(), name="ping"),
    path(f"{HASHTAG}pictures/", AlbumPictureList.as_view(), name="album-pictures"),
    path(f"{HASHTAG}popular/", AlbumPopularList.as_view(), name="album-popular"),
    path(f"{HASHTAG}authors/", AlbumAuthorList.as_view(), name="album-authors"),
    path(f"{HASHTAG}fetch-status/", AlbumFetchStatus.as_view(), name="album-fetch-status"),
    *router.urls,
    # Last: anything else ending in a slash (without one, Django first redirects to add it).
    re_path(r"^.*/$", not_found),
]
