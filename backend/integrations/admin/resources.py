"""Import/export of model mappings (django-import-export), validated row by row.

A row is saved only through `full_clean`, a site admin may only write rows for their own sites,
booleans are read strictly, a file may name each (site, logical name, provider) once, and the
admin's import runs in a transaction: one bad row and the whole file is refused.
"""

from __future__ import annotations

from typing import Any

from django.contrib.sites.models import Site
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from import_export import fields, widgets

from integrations.admin.export_safety import FormulaSafeResource
from integrations.models import ModelMapping
from tenancy.access import site_ids_for


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


class StrictBooleanWidget(widgets.BooleanWidget):
    """true/false, 1/0, yes/no (any case) and JSON booleans; anything else is an error, not False.

    django-import-export's own widget reads every unknown value as False, so a typo such as
    "maybe" would quietly switch a mapping off.
    """

    SPELLINGS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}

    def clean(self, value: Any, row: Any = None, **kwargs: Any) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        spelled = str(value).strip().lower() if isinstance(value, str) else None
        if spelled not in self.SPELLINGS:
            raise ValueError(f"is_active must be one of true/false/1/0/yes/no (any case); got {value!r}.")
        return self.SPELLINGS[spelled]


class ModelMappingResource(FormulaSafeResource):
    site = fields.Field(attribute="site", column_name="site", widget=SiteDomainWidget())
    is_active = fields.Field(attribute="is_active", column_name="is_active", widget=StrictBooleanWidget())

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
        self._rows_by_key: dict[tuple[Any, str, str], Any] = {}

    def before_import(self, dataset: Any, **kwargs: Any) -> None:
        self._rows_by_key = {}
        super().before_import(dataset, **kwargs)

    def import_instance(self, instance: ModelMapping, row: Any, **kwargs: Any) -> None:
        """Refuse a row whose key an earlier row of the same file already wrote (it would overwrite it)."""
        errors: dict[str, Any] = {}
        try:
            super().import_instance(instance, row, **kwargs)
        except ValidationError as exc:
            errors = exc.update_error_dict(errors)
        number = kwargs.get("row_number")
        site = instance.site_id if "site" not in errors else f"domain:{row.get('site')}"
        key = (site, instance.logical_name, instance.provider)
        first = self._rows_by_key.setdefault(key, number)
        if first != number:
            errors.setdefault(NON_FIELD_ERRORS, []).append(
                f"Row {number} repeats row {first}: both are site {row.get('site') or '(global)'!s}, "
                f"logical_name {instance.logical_name!r}, provider {instance.provider!r}. Keep one of them."
            )
        if errors:
            raise ValidationError(errors)

    def validate_instance(
        self, instance: ModelMapping, import_validation_errors: Any = None, validate_unique: bool = True
    ) -> None:
        errors = dict(import_validation_errors or {})
        allowed = site_ids_for(self.user) if self.user is not None else None
        if allowed is not None:  # a site admin: only rows for their own sites
            if instance.site_id is None:
                errors["site"] = "Only a superuser may import global mappings; give a site domain."
            elif instance.site_id not in allowed:
                errors["site"] = "You do not manage that site."
        super().validate_instance(instance, errors, validate_unique)
