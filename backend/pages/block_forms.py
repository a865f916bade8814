"""A form per block type, built from the block schema, so nobody edits a block as raw JSON.

Scalar fields become text inputs (a textarea past 300 characters) with the schema's limits; list
fields (FAQ items, features) become numbered rows of their item fields, empty rows ignored. The
cleaned form turns back into content and is checked by `validate_block`, the same rule the model
and the AI service use, so a form that validates always saves.
"""

from __future__ import annotations

from typing import Any

from django import forms

from .blocks import IMAGE_RULE, SCHEMAS, BlockValidationError, validate_block

SPARE_ROWS = 2  # empty item rows offered after the filled ones


def _label(name: str) -> str:
    return name.replace("_", " ").capitalize().replace("Cta", "Call to action").replace(" url", " URL")


def _text_field(required: bool, max_length: int) -> forms.CharField:
    widget = (
        forms.Textarea(attrs={"rows": 3, "cols": 60})
        if max_length > 300
        else forms.TextInput(attrs={"size": 60, "maxlength": max_length, "data-limit": max_length})
    )
    return forms.CharField(
        required=required,
        max_length=max_length,
        widget=widget,
        help_text=f"At most {max_length} characters." + ("" if required else " Optional."),
    )


def _image_field(site_id: int | None) -> forms.Field:
    """A choice of the site's library images (by title, their alt text shown); any id without a site."""
    if site_id is None:
        return forms.RegexField(regex=r"^\d{1,18}$", required=False, help_text="An image id. Optional.")
    from images.models import Image

    choices = [("", "— no image —")] + [
        (str(pk), f"{title} — {alt or 'no alt text yet'}")
        for pk, title, alt in Image.objects.filter(site_id=site_id)
        .order_by("title")
        .values_list("pk", "title", "alt_text")
    ]
    return forms.ChoiceField(
        choices=choices,
        required=False,
        help_text="From this site's image library. Optional; its alt text is shown to readers.",
    )


class BlockContentForm(forms.Form):
    """The content of one block of `block_type`; `content()` returns the dict to save."""

    def __init__(
        self,
        *args: Any,
        block_type: str,
        content: dict[str, Any] | None = None,
        site_id: int | None = None,
        **kwargs: Any,
    ) -> None:
        if block_type not in SCHEMAS:
            raise ValueError(f"unknown block type {block_type!r}")
        self.block_type = block_type
        initial: dict[str, Any] = {}
        content = content if isinstance(content, dict) else {}
        super().__init__(*args, **kwargs)
        self.lists: list[tuple[str, str, list[list[str]]]] = []  # (field, label, rows of bound field names)
        data = self.data if self.is_bound else {}
        for key, rule in SCHEMAS[block_type].items():
            if rule[0] == "list":
                _, _low, high, item_schema = rule
                found = content.get(key)
                items: list[Any] = found if isinstance(found, list) else []
                posted = max(
                    (int(n.split("-")[1]) + 1 for n in data if n.startswith(f"{key}-") and n.split("-")[1].isdigit()),
                    default=0,
                )
                count = min(high, max(len(items), posted, 1) + (0 if posted else SPARE_ROWS))
                rows = []
                for index in range(count):
                    names = []
                    for sub, sub_rule in item_schema.items():
                        name = f"{key}-{index}-{sub}"
                        field = _image_field(site_id) if sub_rule == IMAGE_RULE else _text_field(False, sub_rule[1])
                        field.label = f"{_label(sub)} {index + 1}"
                        self.fields[name] = field
                        item = items[index] if index < len(items) and isinstance(items[index], dict) else {}
                        initial[name] = item.get(sub, "")
                        names.append(name)
                    rows.append(names)
                self.lists.append((key, _label(key), rows))
            else:
                field = _image_field(site_id) if rule == IMAGE_RULE else _text_field(rule[0], rule[1])
                field.label = _label(key)
                self.fields[key] = field
                initial[key] = content.get(key, "")
        if not self.is_bound:
            self.initial = initial

    def scalar_fields(self) -> list[forms.BoundField]:
        return [self[name] for name, rule in SCHEMAS[self.block_type].items() if rule[0] != "list"]

    def list_rows(self) -> list[tuple[str, list[list[forms.BoundField]]]]:
        return [(label, [[self[name] for name in row] for row in rows]) for _key, label, rows in self.lists]

    def initial_content(self) -> dict[str, Any]:
        """The content as shown in the form (its initial values, or the posted text), for the preview."""
        source = self.data if self.is_bound else self.initial
        return self._collect(lambda name: str(source.get(name) or "").strip())

    def content(self) -> dict[str, Any]:
        """The cleaned values as block content: optional fields left empty are dropped, empty rows too."""
        return self._collect(lambda name: self.cleaned_data.get(name, ""))

    def _collect(self, value: Any) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, rule in SCHEMAS[self.block_type].items():
            if rule[0] == "list":
                rows = next(rows for name, _label_, rows in self.lists if name == key)
                items = []
                for row in rows:
                    item = {name.split("-", 2)[2]: value(name) for name in row}
                    if any(item.values()):
                        items.append({k: v for k, v in item.items() if v})
                result[key] = items
            elif value(key):
                result[key] = value(key)
        return result

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if not self.errors:
            try:
                validate_block(self.block_type, self.content())
            except BlockValidationError as exc:
                for problem in exc.errors:
                    self.add_error(None, problem)
        return cleaned
