from django.apps import AppConfig


class CollagesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "collages"
