from django.urls import path

from albums import views

app_name = "albums"

urlpatterns = [
    path("", views.index, name="index"),
    path("go/", views.go, name="go"),
    # Before album/<hashtag>/: "add" is this page, not an album.
    path("album/add/", views.add_album, name="album-add"),
    path("album/add/<str:hashtag>/", views.add_album_confirm, name="album-add-confirm"),
    path("accounts/albums/", views.dashboard, name="dashboard"),
    path("accounts/albums/<str:hashtag>/edit/", views.edit_album, name="album-edit"),
    path("accounts/albums/<str:hashtag>/delete/", views.delete_album, name="album-delete"),
    path("accounts/albums/<str:hashtag>/emails/", views.follower_emails, name="follower-emails"),
    path("accounts/albums/<str:hashtag>/<slug:action>/", views.album_action, name="album-action"),
    path("album/<str:hashtag>/", views.album_detail, name="album-detail"),
    path("album/<str:hashtag>/popular/", views.popular, name="popular"),
    path("album/<str:hashtag>/by/<str:handle>/", views.by_author, name="by-author"),
    path("album/<str:hashtag>/p/<int:picture_id>/", views.picture_page, name="picture"),
    path("album/<str:hashtag>/p/<int:picture_id>/download/", views.picture_download, name="picture-download"),
    path("album/<str:hashtag>/slideshow/", views.slideshow, name="slideshow"),
    path("album/<str:hashtag>/qr.svg", views.qr_code, name="qr"),
    path("album/<str:hashtag>/feed.json", views.feed, name="feed"),
    path("album/<str:hashtag>/download.zip", views.download, name="download"),
    path("album/<str:hashtag>/follow/", views.follow_album, name="follow"),
]
