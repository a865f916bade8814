from django.apps import AppConfig


class TenancyConfig(AppConfig):
    name = "tenancy"
    verbose_name = "Site access"
    default_auto_field = "django.db.models.BigAutoField"
