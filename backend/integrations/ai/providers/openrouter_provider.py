"""OpenRouter: the OpenAI wire format at openrouter.ai, with its own extensions.

What differs from OpenAI: `vendor/model` ids, attribution headers (`HTTP-Referer`, `X-Title`),
usage accounting (`usage: {include: true}` makes the response carry its cost), the native
`models` fallback list and `provider` routing preferences, the `reasoning` and `cache_control`
controls (checked in `openrouter_options`), Anthropic's `thinking` sent as `reasoning` with the signed blocks
coming and going as `reasoning_details` (`thinking`), and a live model catalogue with prices at `GET /models`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from . import openrouter_options
from .base import AIRequest, GenerationResult, ModelInfo, header_safe
from .errors import InvalidRequest
from .openai_provider import ModelListCache, OpenAIProvider, to_decimal

_models_cache = ModelListCache(ttl=600.0)


class OpenRouterProvider(OpenAIProvider):
    kind = "openrouter"
    # its own options, all sent by `_extra_body` (reasoning, thinking as reasoning) or on the system message
    # (cache_control), not as given
    _own: ClassVar[frozenset[str]] = frozenset(
        {"models", "provider", "transforms", "route", "reasoning", "cache_control", "thinking", "effort"}
    )
    supported_options: ClassVar[frozenset[str]] = OpenAIProvider.supported_options | _own
    extra_body_options: ClassVar[frozenset[str]] = OpenAIProvider.extra_body_options | _own
    takes_reasoning_details = True  # a signed thinking block goes back to the model that wrote it
    takes_cache_marks = True  # passed on to the vendors that cache on request (Anthropic, Gemini)

    def _reasoning(self, request: AIRequest) -> AIRequest:
        """OpenRouter takes all of its `reasoning` option, checked with its other options (`validate_request`)."""
        return request

    def validate_request(self, request: AIRequest) -> AIRequest:
        """The base checks (`thinking`, `effort` and `cache_control` among them), then `reasoning`
        (`openrouter_options`) and how Anthropic's options combine with it here."""
        request = super().validate_request(request)
        options = dict(request.options)
        if "reasoning" in options:
            options["reasoning"] = openrouter_options.check_reasoning(
                options["reasoning"], request.max_tokens, self.name
            )
        if options.get("thinking") is not None:  # Anthropic's option, sent as OpenRouter's `reasoning`
            if options.get("reasoning") is not None:
                raise InvalidRequest("Give thinking or reasoning, not both.", provider=self.name)
            if "display" in options["thinking"]:
                raise InvalidRequest(
                    "thinking.display is not available through openrouter; remove it.", provider=self.name
                )
        effort_with = options.get("reasoning") is not None or (options.get("thinking") or {}).get("budget_tokens")
        if options.get("effort") is not None and effort_with:  # Anthropic's effort is sent as reasoning.effort
            raise InvalidRequest(
                "Give an effort or a thinking budget (or reasoning), not both, through openrouter.", provider=self.name
            )
        return request.with_changes(options=options)

    def reasons(self, model: str) -> bool:
        """Whether `model` is a reasoning model (`openrouter_options.REASONING_MODELS`; no request made)."""
        return openrouter_options.is_reasoning_model(model)

    def _request(self, ai: AIRequest, model: str) -> dict[str, Any]:
        request = super()._request(ai, model)
        control = ai.options.get("cache_control")
        if control and request["messages"] and request["messages"][0]["role"] == "system":
            system = request["messages"][0]
            request["messages"][0] = {
                **system,
                "content": [{"type": "text", "text": system["content"], "cache_control": dict(control)}],
            }
        return request

    def _default_headers(self) -> dict[str, str]:
        headers = {}
        for header, value in (("HTTP-Referer", self.config.http_referer), ("X-Title", self.config.app_name)):
            if value and header_safe(value):
                headers[header] = header_safe(value)
        return headers

    def _extra_body(self, options: Mapping[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = {"usage": {"include": True}}
        if options.get("models"):
            body["models"] = [self.resolve_model(m) for m in options["models"]]
        for key in ("provider", "transforms", "route", "reasoning"):
            if options.get(key) is not None:
                body[key] = options[key]
        if options.get("thinking"):  # a thinking budget is reasoning's max_tokens; adaptive, the model's own
            budget = options["thinking"].get("budget_tokens")
            body["reasoning"] = {"max_tokens": budget} if budget else {"enabled": True}
        if options.get("effort"):  # OpenRouter's highest level is xhigh: Anthropic's max goes as that
            body["reasoning"] = {"effort": {"max": "xhigh"}.get(options["effort"], options["effort"])}
        return body

    def _read_extras(self, result: GenerationResult, payload: Any) -> None:
        extra = getattr(payload, "model_extra", None) or {}
        if extra.get("provider"):
            result.upstream_provider = str(extra["provider"])
        usage = getattr(payload, "usage", None)
        usage_extra = getattr(usage, "model_extra", None) or {}
        if usage_extra.get("cost") is not None:
            result.cost = to_decimal(usage_extra["cost"])

    def get_available_models(self) -> list[ModelInfo]:
        """OpenRouter's live catalogue with prices and context lengths, cached for ten minutes."""
        return _models_cache.get(self.config.fingerprint, lambda: self._guard(self._fetch_models))

    def _fetch_models(self) -> list[ModelInfo]:
        payload = self.client.get("/models", cast_to=object)
        models = []
        for row in payload.get("data", []) if isinstance(payload, dict) else []:
            pricing = row.get("pricing") or {}
            top = row.get("top_provider") or {}
            models.append(
                ModelInfo(
                    id=row["id"],
                    name=row.get("name", ""),
                    context_length=row.get("context_length"),
                    prompt_price=to_decimal(pricing.get("prompt")),
                    completion_price=to_decimal(pricing.get("completion")),
                    max_completion_tokens=top.get("max_completion_tokens"),
                    input_modalities=tuple((row.get("architecture") or {}).get("input_modalities") or ()),
                    supported_parameters=tuple(row.get("supported_parameters") or ()),
                )
            )
        return models

    def _check_key(self) -> dict[str, Any]:
        """OpenRouter's key endpoint: label, usage, limit and remaining credit."""
        payload = self.client.get("/key", cast_to=object)
        data = payload.get("data", {}) if isinstance(payload, dict) else {}
        return {
            "ok": True,
            "usage": data.get("usage"),
            "limit": data.get("limit"),
            "limit_remaining": data.get("limit_remaining"),
            "is_free_tier": data.get("is_free_tier"),
        }
