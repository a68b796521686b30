from __future__ import annotations

from django import forms

from albums.hashtags import normalize_new_hashtag
from albums.models import Album, parse_origins


class AlbumAddForm(forms.Form):
    hashtag = forms.CharField(
        max_length=101,
        label="Hashtag",
        widget=forms.TextInput(attrs={"placeholder": "#sunset", "autocomplete": "off", "autofocus": True}),
    )

    def clean_hashtag(self) -> str:
        return normalize_new_hashtag(self.cleaned_data["hashtag"])


class AlbumEditForm(forms.Form):
    title = forms.CharField(max_length=200, required=False)
    description = forms.CharField(max_length=2000, required=False, widget=forms.Textarea(attrs={"rows": 3}))
    frame_origins = forms.CharField(
        label="Sites that may show the wall in a frame",
        max_length=2000,
        required=False,
        widget=forms.Textarea(attrs={"rows": 2, "placeholder": "https://example.com"}),
        help_text="One origin per line, like https://example.com. Leave empty to let no other site frame it.",
    )

    def clean_frame_origins(self) -> str:
        return "\n".join(parse_origins(self.cleaned_data["frame_origins"]))


class AlbumSettingsForm(forms.Form):
    visibility = forms.ChoiceField(choices=Album.Visibility.choices, widget=forms.RadioSelect)
    owner_emails = forms.BooleanField(required=False, label="Email me when the album reaches a milestone")
