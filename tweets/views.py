"""The owner's page of an album's sources: what each one last found, and switching them off and on."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from albums.access import managed_album_for_request
from tweets.registry import source_options
from tweets.services import choose_album_sources, source_rows


@login_required
@require_http_methods(["GET", "POST"])
def album_sources(request: HttpRequest, hashtag: str) -> HttpResponse:
    album = managed_album_for_request(request, hashtag)
    offered = [option.key for option in source_options(hashtag=album.hashtag) if option.available]
    if request.method == "POST":
        choose_album_sources(album=album, offered=offered, enabled=request.POST.getlist("source"))
        messages.success(request, f"Sources of #{album.hashtag} saved: they apply from the next fetch.")
        return redirect("tweets:album-sources", album.hashtag)
    rows = source_rows(album=album, keys=offered)
    return render(request, "tweets/album_sources.html", {"album": album, "rows": [rows[key] for key in offered]})
