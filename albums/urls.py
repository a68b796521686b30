from django.urls import path

from albums import views

app_name = "albums"

urlpatterns = [
    path("", views.index, name="index"),
    path("go/", views.go, name="go"),
    path("album/<str:hashtag>/", views.album_detail, name="album-detail"),
    path("album/<str:hashtag>/popular/", views.popular, name="popular"),
    path("album/<str:hashtag>/by/<str:handle>/", views.by_author, name="by-author"),
    path("album/<str:hashtag>/slideshow/", views.slideshow, name="slideshow"),
    path("album/<str:hashtag>/feed.json", views.feed, name="feed"),
    path("album/<str:hashtag>/download.zip", views.download, name="download"),
]
