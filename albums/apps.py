from django.apps import AppConfig


class AlbumsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "albums"

    def ready(self) -> None:
        from albums import receivers  # noqa: F401  (connects the milestone email)
