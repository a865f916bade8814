"""What the AI provider settings change page posts: the settings fields plus the credentials inline.

The JSON columns are posted as the form's own inputs (`structured_fields`): pass Python values,
e.g. `fallback_chain=[{"provider": "ollama", "model": "llama3.1"}]`, and they become the rows,
checkboxes and text a browser would send (`fallback_chain-0-provider`, `openrouter_routing_sort`, ...).

Tests written against the old per-provider columns keep their intent: `settings_form_data(record,
openai_base_url=url, new_openai_api_key=key, clear_openrouter_api_key="on")` turns those names into
the inline's rows (`credentials-N-base_url`, `credentials-N-new_api_key`, ...), adding a row for a
provider the record has none for yet.
"""

from __future__ import annotations

import re
from typing import Any

from integrations.ai.providers import registry
from integrations.models import AIProviderSettings, ProviderCredential

PREFIX = "credentials"
_COLUMN = re.compile(
    r"^(?P<action>new_|clear_)?(?P<provider>[a-z][a-z0-9_-]*?)_(?P<field>api_key|base_url|default_model)$"
)


def _credential_change(name: str) -> tuple[str, str] | None:
    """('openai', 'base_url') for 'openai_base_url'; ('openai', 'new_api_key') for 'new_openai_api_key'."""
    match = _COLUMN.match(name)
    if match is None or registry.find(match["provider"]) is None:
        return None
    field = match["field"]
    if field == "api_key":
        if not match["action"]:
            return None  # the stored key is never a form field
        field = f"{match['action']}api_key"
    return match["provider"], field


def credentials_data(
    record: AIProviderSettings | None,
    changes: dict[str, dict[str, Any]] | None = None,
    add: tuple[dict[str, Any], ...] = (),
) -> dict[str, Any]:
    """The inline's POST data: every stored row as it is (with `changes[name]` applied; a None value
    leaves the field out, e.g. `{"enabled": None}` unticks it), then a new row per provider named in
    `changes` that has none, then the rows in `add`."""
    changes = dict(changes or {})
    rows = list(ProviderCredential.objects.filter(settings=record).order_by("pk")) if record and record.pk else []
    forms: list[dict[str, Any]] = []
    for row in rows:
        values: dict[str, Any] = {
            "id": row.pk,
            "settings": record.pk if record else "",
            "provider": row.provider,
            "name": row.name,
            "base_url": row.base_url,
            "default_model": row.default_model,
            "enabled": "on" if row.enabled else None,
        }
        values.update(changes.pop(row.label_name, {}))
        forms.append(values)
    for name, values in changes.items():
        forms.append({"provider": name, "enabled": "on", **values})
    forms += [{"enabled": "on", **values} for values in add]
    data: dict[str, Any] = {
        f"{PREFIX}-TOTAL_FORMS": len(forms),
        f"{PREFIX}-INITIAL_FORMS": len(rows),
        f"{PREFIX}-MIN_NUM_FORMS": 0,
        f"{PREFIX}-MAX_NUM_FORMS": 1000,
    }
    for index, values in enumerate(forms):
        data.update({f"{PREFIX}-{index}-{key}": value for key, value in values.items() if value is not None})
    return data


STRUCTURED = (
    "fallback_chain",
    "openrouter_fallback_models",
    "openrouter_routing",
    "allowed_providers",
    "allowed_models",
    "service_budgets",
    "alert_thresholds",
)


def structured_fields(name: str, value: Any) -> dict[str, Any]:
    """What the form posts for JSON column `name` holding `value` (a list or dict, as stored)."""
    if name == "fallback_chain":
        data: dict[str, Any] = {"fallback_chain": "rows"}
        for index, entry in enumerate(value):
            data.update(
                {
                    f"fallback_chain-{index}-provider": entry.get("provider", ""),
                    f"fallback_chain-{index}-model": entry.get("model", ""),
                    f"fallback_chain-{index}-order": str(index + 1),
                }
            )
        return data
    if name == "service_budgets":
        data = {"service_budgets": "rows"}
        for index, (service, amount) in enumerate(value.items()):
            data.update({f"service_budgets-{index}-service": service, f"service_budgets-{index}-amount": str(amount)})
        return data
    if name == "openrouter_routing":
        data = {f"openrouter_routing_{key}": ", ".join(value.get(key, [])) for key in ("order", "only", "ignore")}
        data.update(
            {
                "openrouter_routing_sort": value.get("sort", ""),
                "openrouter_routing_data_collection": value.get("data_collection", ""),
            }
        )
        if value.get("allow_fallbacks", True) is not False:
            data["openrouter_routing_allow_fallbacks"] = "on"
        if value.get("require_parameters"):
            data["openrouter_routing_require_parameters"] = "on"
        return data
    if name in ("openrouter_fallback_models", "allowed_models"):
        return {name: "\n".join(value)}
    if name == "alert_thresholds":
        return {name: ", ".join(str(t) for t in value)}
    if name == "allowed_providers":
        return {name: list(value)} if value else {}
    raise KeyError(name)


def settings_form_data(record: AIProviderSettings, **changes: Any) -> dict[str, Any]:
    """The whole change page's POST for `record`, with `changes` (settings fields or old column names).
    The JSON columns are posted as stored unless `changes` gives them (as Python values)."""
    data: dict[str, Any] = {
        "site": record.site_id,
        "provider_type": record.provider_type,
        "enabled": "on",
        "openrouter_http_referer": record.openrouter_http_referer,
        "openrouter_app_name": record.openrouter_app_name,
        "monthly_budget": "",
    }
    for name in STRUCTURED:
        data.update(structured_fields(name, changes.pop(name, getattr(record, name))))
    credential_changes: dict[str, dict[str, Any]] = {}
    for name, value in changes.items():
        target = _credential_change(name)
        if target is None:
            data[name] = value
        else:
            credential_changes.setdefault(target[0], {})[target[1]] = value
    data.update(credentials_data(record, credential_changes))
    return data


def credential_errors(response: Any) -> dict[str, dict[str, list[str]]]:
    """The inline's errors by row name (provider or endpoint), plus '__all__' for the formset's own."""
    errors: dict[str, dict[str, list[str]]] = {}
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        for form in formset.forms:
            if form.errors:
                name = form.data.get(form.add_prefix("name")) or form.data.get(form.add_prefix("provider")) or ""
                errors[name] = {field: list(messages) for field, messages in form.errors.items()}
        if formset.non_form_errors():
            errors["__all__"] = {"__all__": list(formset.non_form_errors())}
    return errors


def stored(record: AIProviderSettings, name: str, field: str) -> str:
    """A credential row's field as stored ("" when the record has no row of that name)."""
    row = ProviderCredential.objects.filter(settings=record, name=name).first()
    return getattr(row, field) if row is not None else ""
