from django.contrib.auth import views as auth_views
from django.urls import path

from users import views

# No app_name: Django's auth views and django-registration look their URLs up by these plain names.
urlpatterns = [
    path("register/", views.SignUpView.as_view(), name="django_registration_register"),
    path("register/complete/", views.registration_complete, name="django_registration_complete"),
    path(
        "register/closed/",
        auth_views.TemplateView.as_view(template_name="django_registration/registration_closed.html"),
        name="django_registration_disallowed",
    ),
    path("activate/", views.ActivateView.as_view(), name="django_registration_activate"),
    path(
        "activate/complete/",
        auth_views.TemplateView.as_view(template_name="django_registration/activation_complete.html"),
        name="django_registration_activation_complete",
    ),
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("password/change/", views.PasswordChangeView.as_view(), name="password_change"),
    path("password/change/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("password/reset/", views.PasswordResetView.as_view(), name="password_reset"),
    path("password/reset/done/", auth_views.PasswordResetDoneView.as_view(), name="password_reset_done"),
    path(
        "password/reset/<uidb64>/<token>/",
        views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path("password/reset/complete/", auth_views.PasswordResetCompleteView.as_view(), name="password_reset_complete"),
    path("delete/", views.delete_account, name="delete-account"),
    path("tokens/", views.tokens, name="tokens"),
    path("tokens/<int:token_id>/revoke/", views.revoke_token, name="token-revoke"),
]
