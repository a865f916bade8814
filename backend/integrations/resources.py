"""Import/export of model mappings (django-import-export), validated row by row.

A row is saved only through `full_clean`, a site admin may only write rows for their own sites,
and the admin's import runs in a transaction: one bad row and the whole file is refused.
"""

from __future__ import annotations

from typing import Any

from django.contrib.sites.models import Site
from import_export import fields, resources, widgets

from tenancy.access import site_ids_for

from .models import ModelMapping


class SiteDomainWidget(widgets.ForeignKeyWidget):
    """Sites by domain in files; an empty cell means a global mapping."""

    def __init__(self) -> None:
        super().__init__(Site, field="domain")

    def clean(self, value: Any, row: Any = None, **kwargs: Any) -> Site | None:
        if value in (None, ""):
            return None
        try:
            return super().clean(value, row, **kwargs)
        except Site.DoesNotExist:
            raise ValueError(f"No site with domain {value!r}.") from None


class ModelMappingResource(resources.ModelResource):
    site = fields.Field(attribute="site", column_name="site", widget=SiteDomainWidget())

    class Meta:
        model = ModelMapping
        fields = ("site", "logical_name", "provider", "provider_model_id", "is_active")
        export_order = fields
        import_id_fields = ("site", "logical_name", "provider")
        clean_model_instances = True
        skip_unchanged = True
        use_transactions = True

    def __init__(self, user: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.user = user

    def validate_instance(self, instance: ModelMapping, import_validation_errors: Any = None,
                          validate_unique: bool = True) -> None:
        errors = dict(import_validation_errors or {})
        allowed = site_ids_for(self.user) if self.user is not None else None
        if allowed is not None:  # a site admin: only rows for their own sites
            if instance.site_id is None:
                errors["site"] = "Only a superuser may import global mappings; give a site domain."
            elif instance.site_id not in allowed:
                errors["site"] = "You do not manage that site."
        super().validate_instance(instance, errors, validate_unique)
