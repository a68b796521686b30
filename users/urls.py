from django.urls import path

from users import views

app_name = "users"

urlpatterns = [
    path("tokens/", views.tokens, name="tokens"),
    path("tokens/<int:token_id>/revoke/", views.revoke_token, name="token-revoke"),
]
