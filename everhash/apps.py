from django.apps import AppConfig


class EverhashConfig(AppConfig):
    name = "everhash"
    verbose_name = "everhash"

    def ready(self) -> None:
        from everhash import checks  # noqa: F401  (registers the system checks)
