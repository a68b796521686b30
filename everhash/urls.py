from pathlib import Path

from django.conf import settings
from django.conf.urls.static import static
from django.contrib import admin
from django.urls import include, path

from everhash.health import healthz
from users.views import admin_login

urlpatterns = [
    # Before albums.urls, whose accounts/albums/<hashtag>/<action>/ would take .../sources/.
    path("", include("tweets.urls")),
    path("", include("albums.urls")),
    path("", include("pictures.urls")),
    path("accounts/", include("users.urls")),
    # Before the admin's own URLs: its sign-in page under the site's limits.
    path("admin/login/", admin_login, name="admin-login"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("everhash.api")),
    path("healthz", healthz, name="healthz"),
]

if settings.DEBUG and settings.MEDIA_URL.startswith("/"):
    # Development only: renditions and collages from the local folder (production: S3 or nginx).
    # Never originals/: they are served by pictures.views.original, which checks who may see them.
    for _public in ("renditions/", "collages/"):
        urlpatterns += static(settings.MEDIA_URL + _public, document_root=Path(settings.MEDIA_ROOT) / _public)

handler404 = "albums.views.page_not_found"
