"""Form fields that edit the settings' JSON columns as ordinary inputs.

The AI provider settings keep lists and objects in JSON columns (the failover chain, OpenRouter's
routing, the model policy, budget windows). People should not have to write JSON to change them:
each field here renders rows of selects and inputs, checkboxes or plain text, and turns what was
posted back into the value the column has always held. The record's own `clean()` still has the
last word (it knows endpoints added on the same page), so the fields only refuse what is malformed
and leave membership checks (is this provider known?) to it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

MAX_ROWS = 100  # a posted row count beyond this is not a person filling a form


@dataclass
class Column:
    """One input of a row: a select (`choices`) or a text input (with an optional `datalist`)."""

    key: str
    label: str
    choices: list[tuple[str, str]] = field(default_factory=list)
    datalist: list[str] = field(default_factory=list)
    placeholder: str = ""
    select: bool = False
    input_type: str = "text"


class RowListWidget(forms.Widget):
    """N rows of inputs named `<name>-<i>-<column>` plus, when `ordered`, an order number per row.

    Works without JavaScript (spare empty rows; reorder by editing the numbers); `row_list.js` adds
    up/down/remove buttons and "Add a row" and keeps the numbers in step with the rows.
    """

    template_name = "integrations/widgets/row_list.html"
    spare_rows = 2

    class Media:
        js = ("integrations/row_list.js",)

    def __init__(
        self,
        columns: list[Column],
        ordered: bool = False,
        add_label: str = "Add a row",
        attrs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(attrs)
        self.columns = columns
        self.ordered = ordered
        self.add_label = add_label

    def __deepcopy__(self, memo: dict[int, Any]) -> RowListWidget:
        copy = super().__deepcopy__(memo)
        copy.columns = [Column(**vars(c)) for c in self.columns]
        return copy

    def id_for_label(self, id_: str) -> str:
        return f"{id_}_0_{self.columns[0].key}" if id_ else id_

    def _indexes(self, data: Any, name: str) -> list[int]:
        pattern = re.compile(rf"^{re.escape(name)}-(\d+)-{re.escape(self.columns[0].key)}$")
        found = sorted({int(m[1]) for key in data if (m := pattern.match(key)) and len(m[1]) < 6})
        return found[:MAX_ROWS]

    def value_from_datadict(self, data: Any, files: Any, name: str) -> list[dict[str, str]]:
        rows = []
        for index in self._indexes(data, name):
            row = {c.key: str(data.get(f"{name}-{index}-{c.key}") or "").strip() for c in self.columns}
            if self.ordered:
                row["order"] = str(data.get(f"{name}-{index}-order") or "").strip()
            rows.append(row)
        return rows

    def value_omitted_from_data(self, data: Any, files: Any, name: str) -> bool:
        return name not in data and not self._indexes(data, name)

    def format_value(self, value: Any) -> list[dict[str, str]]:
        return [{k: "" if v is None else str(v) for k, v in row.items()} for row in (value or [])]

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        context = super().get_context(name, value, attrs)
        rows = context["widget"]["value"] or []
        blank = {c.key: "" for c in self.columns}
        rows = [*rows, *([blank] * self.spare_rows)]
        rendered = []
        for index, row in enumerate(rows):
            cells = []
            for column in self.columns:
                current = row.get(column.key, "")
                choices = list(column.choices)
                if column.select and current and current not in {v for v, _ in choices}:
                    choices.append((current, f"{current} (unknown)"))  # shown back, so the error makes sense
                cells.append(
                    {
                        "column": column,
                        "name": f"{name}-{index}-{column.key}",
                        "value": current,
                        "choices": choices,
                        "id": f"{context['widget']['attrs'].get('id', name)}_{index}_{column.key}",
                    }
                )
            rendered.append({"index": index, "cells": cells, "order": row.get("order") or str(index + 1)})
        context["widget"].update(
            rows=rendered,
            columns=self.columns,
            ordered=self.ordered,
            add_label=self.add_label,
            template_row=self._template_row(name, context),
        )
        return context

    def _template_row(self, name: str, context: dict[str, Any]) -> dict[str, Any]:
        cells = [
            {
                "column": c,
                "name": f"{name}-__prefix__-{c.key}",
                "value": "",
                "choices": c.choices,
                "id": f"{context['widget']['attrs'].get('id', name)}___prefix___{c.key}",
            }
            for c in self.columns
        ]
        return {"index": "__prefix__", "cells": cells, "order": ""}


def _row_label(position: int, row: dict[str, str], key: str) -> str:
    return f"Row {position}" + (f" ({row[key]})" if row.get(key) else "")


class FallbackChainField(forms.Field):
    """The failover chain: ordered rows of (provider, model) -> [{"provider", "model"}, ...]."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault(
            "widget",
            RowListWidget(
                [Column("provider", "Provider", select=True), Column("model", "Model", placeholder="provider default")],
                ordered=True,
                add_label="Add a fallback",
            ),
        )
        super().__init__(**kwargs)

    def set_options(self, providers: list[tuple[str, str]], models: list[str]) -> None:
        provider, model = self.widget.columns
        provider.choices = [("", "—"), *providers]
        model.datalist = models

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, list):
            return [
                {
                    "provider": str(e.get("provider") or ""),
                    "model": str(e.get("model") or ""),
                    **({"order": e["order"]} if "order" in e else {}),
                }
                if isinstance(e, dict)
                else {"provider": str(e), "model": ""}
                for e in value
            ]
        return value

    def to_python(self, value: Any) -> list[dict[str, str]]:
        if not value:
            return []
        if not isinstance(value, list):
            raise ValidationError("Choose a provider (and optionally a model) in each row.", code="invalid")
        keyed = []
        for position, row in enumerate(value, start=1):
            provider, model, order = row.get("provider", ""), row.get("model", ""), row.get("order", "")
            if not provider and not model:
                continue  # an empty row: a spare one, or one cleared to remove it
            if not provider:
                raise ValidationError(
                    f"Row {position} (model {model}): choose a provider, or clear the model to remove the row.",
                    code="no_provider",
                )
            if order and not re.fullmatch(r"-?\d{1,6}", order):
                raise ValidationError(
                    f"Row {position} ({provider}): the order “{order}” is not a whole number.", code="bad_order"
                )
            keyed.append((int(order) if order else position, position, {"provider": provider, "model": model}))
        return [entry for _, _, entry in sorted(keyed, key=lambda item: (item[0], item[1]))]


class ServiceBudgetsField(forms.Field):
    """Monthly caps per calling service: rows of (service, USD) -> {"pages.meta": "5.00", ...}."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault(
            "widget",
            RowListWidget(
                [
                    Column("service", "Service", placeholder="e.g. pages.meta"),
                    Column("amount", "Monthly cap (USD)", placeholder="e.g. 5.00", input_type="text"),
                ],
                add_label="Add a service budget",
            ),
        )
        super().__init__(**kwargs)

    def set_options(self, services: list[str]) -> None:
        self.widget.columns[0].datalist = services

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, dict):
            return [{"service": str(k), "amount": str(v)} for k, v in value.items()]
        return value

    def to_python(self, value: Any) -> dict[str, str]:
        if not value:
            return {}
        if not isinstance(value, list):
            raise ValidationError("Enter a service name and a USD amount in each row.", code="invalid")
        budgets: dict[str, str] = {}
        for position, row in enumerate(value, start=1):
            service, amount = row.get("service", ""), row.get("amount", "")
            if not service and not amount:
                continue
            where = _row_label(position, row, "service")
            if not service:
                raise ValidationError(
                    f"{where}: name the service the {amount} USD cap is for, e.g. pages.meta.", code="no_service"
                )
            if not amount:
                raise ValidationError(f"{where}: enter a monthly cap in USD, e.g. 5.00.", code="no_amount")
            try:
                number = Decimal(amount)
            except InvalidOperation:
                number = None
            if number is None or not number.is_finite():
                raise ValidationError(f"{where}: “{amount}” is not an amount in USD, e.g. 5.00.", code="bad_amount")
            if number < 0:
                raise ValidationError(f"{where}: the cap cannot be negative.", code="negative")
            if service in budgets:
                raise ValidationError(f"{where}: {service} has two rows; keep one.", code="duplicate")
            budgets[service] = amount
        return budgets


class LinesField(forms.Field):
    """A list of ids or patterns, one per line, as plain text (no JSON quotes or brackets)."""

    widget = forms.Textarea

    def __init__(self, *, example: str, slash_required: bool = False, **kwargs: Any) -> None:
        self.example = example
        self.slash_required = slash_required
        super().__init__(**kwargs)
        self.widget.attrs.setdefault("rows", 4)
        self.widget.attrs.setdefault("placeholder", example)

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, list):
            return "\n".join(str(item) for item in value)
        return value

    def to_python(self, value: Any) -> list[str]:
        if isinstance(value, list):
            return value
        lines = [line.strip() for line in str(value or "").splitlines()]
        result = []
        for number, line in enumerate(lines, start=1):
            if not line:
                continue
            if any(c in line for c in "[]{}\"',") or any(c.isspace() for c in line):
                raise ValidationError(
                    f"Line {number} (“{line}”): write one id per line, without quotes, brackets, commas or "
                    f"spaces, e.g. {self.example.splitlines()[0]}.",
                    code="not_one_per_line",
                )
            if self.slash_required and "/" not in line:
                raise ValidationError(
                    f"Line {number} (“{line}”) is not a vendor/model id, e.g. {self.example.splitlines()[0]}.",
                    code="no_vendor",
                )
            result.append(line)
        return result


class PercentagesField(forms.CharField):
    """Alert thresholds as "50, 80, 100" -> [50, 80, 100]."""

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, list):
            return ", ".join(str(item) for item in value)
        return value

    def to_python(self, value: Any) -> list[int]:
        if isinstance(value, list):
            return value
        result = []
        for part in re.split(r"[,;\s]+", str(value or "").replace("%", " ")):
            if not part:
                continue
            if not part.isdigit():
                raise ValidationError(
                    f"“{part}” is not a whole percentage; write e.g. 50, 80, 100.", code="not_a_percentage"
                )
            number = int(part)
            if not 0 < number <= 1000:
                raise ValidationError(
                    f"{number}% is out of range: each threshold is between 1 and 1000.", code="out_of_range"
                )
            result.append(number)
        return result


class ProviderChecksField(forms.MultipleChoiceField):
    """Providers as checkboxes. Membership is the record's check (it knows endpoints added on the
    same page), so a posted name outside today's choices reaches it instead of a generic error."""

    widget = forms.CheckboxSelectMultiple

    def valid_value(self, value: str) -> bool:
        return bool(re.fullmatch(r"[a-z][a-z0-9_-]{0,19}", value))

    def has_changed(self, initial: Any, data: Any) -> bool:
        return sorted(initial or []) != sorted(data or [])


ROUTING_SORTS = [
    ("", "OpenRouter's default (balanced)"),
    ("price", "Lowest price"),
    ("throughput", "Highest throughput"),
    ("latency", "Lowest latency"),
]
ROUTING_DATA_COLLECTION = [
    ("", "OpenRouter's default (allow)"),
    ("allow", "Allow"),
    ("deny", "Deny (no storing or training on prompts)"),
]
_PROVIDER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._/-]{0,63}")


class RoutingWidget(forms.Widget):
    """OpenRouter's provider routing as labelled inputs named `<name>_<key>`."""

    template_name = "integrations/widgets/routing.html"
    LISTS = ("order", "only", "ignore")

    def id_for_label(self, id_: str) -> str:
        return f"{id_}_order" if id_ else id_

    def value_from_datadict(self, data: Any, files: Any, name: str) -> dict[str, Any]:
        value: dict[str, Any] = {
            key: str(data.get(f"{name}_{key}") or "").strip() for key in (*self.LISTS, "sort", "data_collection")
        }
        value["allow_fallbacks"] = f"{name}_allow_fallbacks" in data
        value["require_parameters"] = f"{name}_require_parameters" in data
        return value

    def value_omitted_from_data(self, data: Any, files: Any, name: str) -> bool:
        return not any(key.startswith(f"{name}_") for key in data)

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        context = super().get_context(name, value, attrs)
        current = value if isinstance(value, dict) else {}
        text = {key: current.get(key) for key in self.LISTS}
        for key, item in text.items():
            text[key] = ", ".join(str(i) for i in item) if isinstance(item, list) else str(item or "")
        context["widget"].update(
            text=text,
            sort=current.get("sort") or "",
            data_collection=current.get("data_collection") or "",
            allow_fallbacks=current.get("allow_fallbacks") is not False,
            require_parameters=bool(current.get("require_parameters")),
            sorts=ROUTING_SORTS,
            data_collections=ROUTING_DATA_COLLECTION,
        )
        return context


class RoutingField(forms.Field):
    """OpenRouter's `provider` object: order, fallbacks, sort, data collection, only/ignore, required
    parameters. Only what differs from OpenRouter's defaults is stored (allowing fallbacks and
    collecting data are its defaults, so an untouched form stores {})."""

    widget = RoutingWidget

    def prepare_value(self, value: Any) -> Any:
        return value

    def to_python(self, value: Any) -> dict[str, Any]:
        if not value:
            return {}
        if not isinstance(value, dict):
            raise ValidationError("Fill in the routing fields.", code="invalid")
        if "allow_fallbacks" not in value or not isinstance(value.get("order", ""), str):
            return value  # already a stored routing object (the initial value)
        routing: dict[str, Any] = {}
        labels = {"order": "Provider order", "only": "Only these providers", "ignore": "Never these providers"}
        for key in RoutingWidget.LISTS:
            names = [part.strip() for part in value.get(key, "").split(",") if part.strip()]
            for part in names:
                if not _PROVIDER_NAME.fullmatch(part):
                    raise ValidationError(
                        f"{labels[key]}: “{part}” is not a provider name; separate names with "
                        "commas, e.g. anthropic, openai.",
                        code="bad_provider_name",
                    )
            if names:
                routing[key] = names
        if not value["allow_fallbacks"]:
            routing["allow_fallbacks"] = False
        if value.get("sort"):
            if value["sort"] not in {v for v, _ in ROUTING_SORTS}:
                raise ValidationError(f"Sort: “{value['sort']}” is not price, throughput or latency.", code="sort")
            routing["sort"] = value["sort"]
        if value.get("data_collection"):
            if value["data_collection"] not in {"allow", "deny"}:
                raise ValidationError(
                    f"Data collection: “{value['data_collection']}” is not allow or deny.", code="data_collection"
                )
            routing["data_collection"] = value["data_collection"]
        if value.get("require_parameters"):
            routing["require_parameters"] = True
        return routing

    def has_changed(self, initial: Any, data: Any) -> bool:
        try:
            return (initial or {}) != self.to_python(data)
        except ValidationError:
            return True
