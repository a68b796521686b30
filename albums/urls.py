from django.urls import path

from albums import views

app_name = "albums"

urlpatterns = [
    path("", views.index, name="index"),
    path("album/<str:hashtag>/", views.album_detail, name="album-detail"),
]
