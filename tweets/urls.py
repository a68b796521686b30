from django.urls import path

from tweets import views

app_name = "tweets"

urlpatterns = [
    path("accounts/albums/<str:hashtag>/sources/", views.album_sources, name="album-sources"),
]
