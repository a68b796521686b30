from django.urls import path

from pictures import views

app_name = "pictures"

urlpatterns = [
    path("picture/<int:picture_id>/original", views.original, name="picture-original"),
    path("album/<str:hashtag>/hidden/", views.hidden, name="hidden"),
    path(
        "album/<str:hashtag>/pictures/<int:picture_id>/hide/",
        views.picture_action,
        {"action": "hide"},
        name="picture-hide",
    ),
    path(
        "album/<str:hashtag>/pictures/<int:picture_id>/unhide/",
        views.picture_action,
        {"action": "unhide"},
        name="picture-unhide",
    ),
    path(
        "album/<str:hashtag>/pictures/<int:picture_id>/approve/",
        views.picture_action,
        {"action": "approve"},
        name="picture-approve",
    ),
    path("album/<str:hashtag>/pictures/<int:picture_id>/ban-author/", views.ban_author, name="picture-ban-author"),
    path("album/<str:hashtag>/banned/<int:block_id>/unban/", views.unban_author, name="unban-author"),
    path("album/<str:hashtag>/blocked-words/", views.block_word, name="block-word"),
    path("album/<str:hashtag>/blocked-words/<int:word_id>/remove/", views.unblock_word, name="unblock-word"),
]
