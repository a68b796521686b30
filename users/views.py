"""Account pages: personal API tokens (create, shown once; revoke)."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from users.models import ApiToken

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
    return redirect("users:tokens")
