"""Account pages: sign-up and activation, sign-in, password reset, deleting the account, API tokens."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import REDIRECT_FIELD_NAME, logout
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST
from django.views.generic.edit import FormMixin
from django_registration.backends.activation.views import ActivationView, RegistrationView

from everhash.emails import absolute_url, send_email
from users import services
from users.forms import DeleteAccountForm, LoginForm, ResetForm, SignUpForm
from users.models import ApiToken
from users.services import check_rate_limits

# Enough for every script and site someone runs; a bound on rows a single account can create.
MAX_TOKENS_PER_USER = 20


class TokenForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        help_text="What the token is for, so you know which one to revoke later (e.g. “export script”).",
    )


@never_cache  # the new token appears on this page once: no cache may keep it
@login_required
@require_http_methods(["GET", "POST"])
def tokens(request: HttpRequest) -> HttpResponse:
    form = TokenForm(request.POST or None)
    created = key = None
    if request.method == "POST" and form.is_valid():
        if request.user.api_tokens.count() >= MAX_TOKENS_PER_USER:
            form.add_error(None, f"You have {MAX_TOKENS_PER_USER} tokens already: revoke one you no longer use.")
        else:
            created, key = ApiToken.objects.issue(user=request.user, name=form.cleaned_data["name"])
            form = TokenForm()
    context = {"tokens": request.user.api_tokens.all(), "form": form, "created": created, "key": key}
    return render(request, "users/tokens.html", context, status=400 if form.errors else 200)


@login_required
@require_POST
def revoke_token(request: HttpRequest, token_id: int) -> HttpResponse:
    token = get_object_or_404(ApiToken, pk=token_id, user=request.user)  # others' tokens: 404
    token.delete()
    messages.success(request, f"Revoked “{token.name}”: programs using it are refused from now on.")
    return redirect("tokens")


# --- Sign-up, activation, sign-in, password reset ------------------------------


class SignUpView(RegistrationView):
    """django-registration's two-step (HMAC) workflow, answering the same for known emails."""

    form_class = SignUpForm
    template_name = "django_registration/registration_form.html"

    def get_form(self, form_class=None):
        # django-registration insists on a ModelForm of the user model; ours is a plain form
        # because a "this email is taken" error would tell strangers who has an account.
        return FormMixin.get_form(self, form_class)

    def post(self, request, *args, **kwargs):
        email = request.POST.get("email", "")
        wait = check_rate_limits(scope="signup", request=request, email=email)
        if wait:
            return _limited(request, self.template_name, self.form_class(initial={"email": email}), wait)
        return super().post(request, *args, **kwargs)

    def register(self, form):
        return services.register(
            email=form.cleaned_data["email"],
            password=form.cleaned_data["password1"],
            send_activation=self.send_activation_email,
        )

    def send_activation_email(self, user) -> None:
        key = self.get_activation_key(user)
        url = absolute_url(reverse("django_registration_activate")) + f"?activation_key={key}"
        send_email(
            to=[user.email],
            template="activation",
            context={"activation_url": url, "activation_days": settings.ACCOUNT_ACTIVATION_DAYS},
        )


class ActivateView(ActivationView):
    """The activation link opens a page whose button activates (link scanners only GET)."""

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), "activation_days": settings.ACCOUNT_ACTIVATION_DAYS}


def registration_complete(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "django_registration/registration_complete.html",
        {"activation_days": settings.ACCOUNT_ACTIVATION_DAYS},
    )


class LimitedSignInMixin:
    """Sign-in under the limits of users/services.py, for the site's page and the admin's.

    A limited request never authenticates: it gets the empty form with the email as typed, the
    wait message, 429 and Retry-After, whether the password was right or wrong.
    """

    def post(self, request, *args, **kwargs):
        email = request.POST.get("username", "")
        self.attempt = services.begin_sign_in(request=request, email=email)
        if self.attempt.wait:
            form = self.get_form_class()(request, initial={"username": email})  # unbound: never validated
            return _limited(request, self.template_name, form, self.attempt.wait, extra=self.get_context_data())
        return super().post(request, *args, **kwargs)

    def form_valid(self, form):
        response = super().form_valid(form)
        services.sign_in_succeeded(attempt=self.attempt, email=form.get_user().email, response=response)
        return response


class LoginView(LimitedSignInMixin, auth_views.LoginView):
    form_class = LoginForm
    redirect_authenticated_user = True

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), "registration_open": settings.REGISTRATION_OPEN}


class AdminLoginView(LimitedSignInMixin, auth_views.LoginView):
    authentication_form = AdminAuthenticationForm
    template_name = "admin/login.html"


def admin_login(request: HttpRequest) -> HttpResponse:
    """/admin/login/: Django's AdminSite.login, with the site's sign-in limits."""
    if request.method == "GET" and admin.site.has_permission(request):
        return redirect("admin:index")
    context = {
        **admin.site.each_context(request),
        "title": "Log in",
        "subtitle": None,
        "app_path": request.get_full_path(),
        "username": request.user.get_username(),
    }
    if REDIRECT_FIELD_NAME not in request.GET and REDIRECT_FIELD_NAME not in request.POST:
        context[REDIRECT_FIELD_NAME] = reverse("admin:index")
    request.current_app = admin.site.name
    return AdminLoginView.as_view(extra_context=context)(request)


class PasswordResetView(auth_views.PasswordResetView):
    """Django's reset: the same answer for known and unknown emails; sent through our email helper."""

    form_class = ResetForm

    def post(self, request, *args, **kwargs):
        email = request.POST.get("email", "")
        wait = check_rate_limits(scope="password_reset", request=request, email=email)
        if wait:
            return _limited(request, self.template_name, self.form_class(initial={"email": email}), wait)
        return super().post(request, *args, **kwargs)

    def form_valid(self, form):
        form.save(request=self.request, use_https=self.request.is_secure(), domain_override=None)
        return redirect(self.get_success_url())


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    """The new password from the reset link: tokens revoked; a pending sign-up activated; this client trusted."""

    def form_valid(self, form):
        response = super().form_valid(form)
        services.password_changed(user=form.user, through_inbox=True)
        services.trust_device(response=response, email=form.user.email)
        return response


class PasswordChangeView(auth_views.PasswordChangeView):
    """Django's change (this session stays signed in, the others are signed out); API tokens revoked."""

    def form_valid(self, form):
        response = super().form_valid(form)
        services.password_changed(user=form.user, through_inbox=False)
        messages.info(self.request, "Your password is changed. Your API tokens are revoked: make new ones.")
        return response


def _limited(request: HttpRequest, template: str, form, wait: int, extra: dict | None = None) -> HttpResponse:
    """`form` again, unbound (nothing in it is checked), the wait message, status 429 and Retry-After."""
    messages.error(request, services.wait_message(wait))  # shown by this very page (ours and the admin's)
    response = render(request, template, {**(extra or {}), "form": form}, status=429)
    response["Retry-After"] = str(wait)
    return response


@login_required
@require_http_methods(["GET", "POST"])
def delete_account(request: HttpRequest) -> HttpResponse:
    """Delete my account: my albums go with it (pictures and files included)."""
    form = DeleteAccountForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        user = request.user
        logout(request)
        services.delete_account(user=user)
        messages.success(request, "Your account and your albums are deleted.")
        return redirect("albums:index")
    albums = request.user.albums.order_by("hashtag")
    return render(request, "users/delete_account.html", {"form": form, "albums": albums})
