"""Spreadsheet-safe exports: a cell that a spreadsheet would run as a formula is exported as text.

Model names, services and request ids in the ledger and the mappings come from API callers and site
admins, so an export opened in Excel or LibreOffice could carry `=HYPERLINK(…)` or `@SUM(…)`.
django-import-export's own switch (`IMPORT_EXPORT_ESCAPE_FORMULAE_ON_EXPORT`, 4.4.3) only drops a
leading `=` and turns every other cell into text (None becomes "None"), so exports use this instead:
a text cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return gets a leading `'`, as OWASP
recommends (numbers such as `-1.5` stay numbers).
"""

from __future__ import annotations

from typing import Any

from import_export import resources

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def escape_formula(value: Any) -> Any:
    """`value` as a spreadsheet shows it as text: strings that would start a formula get a leading `'`."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and not _number(value):
        return "'" + value
    return value


class FormulaSafeResource(resources.ModelResource):
    """A ModelResource whose exported cells are never spreadsheet formulas."""

    def export_field(self, field: Any, instance: Any, **kwargs: Any) -> Any:
        return escape_formula(super().export_field(field, instance, **kwargs))
