"""What people read for the codes the ledger, jobs and errors store.

The ledger keeps machine names (`pages.meta`, `ProviderUnavailable`, `openrouter`) so that filters,
exports and metrics stay stable; every admin screen (dashboard, usage log, test screen, batch jobs)
shows them through these functions, so one code reads the same everywhere. An unknown code is
shown as it is, never hidden.
"""

from __future__ import annotations

from integrations.ai.providers import errors, registry

# Calling services (AIService(service=...)) and batch-job kinds (BatchJob.kind).
SERVICE_LABELS: dict[str, str] = {
    "pages.meta": "Page meta",
    "pages.blocks": "Page blocks",
    "pages.translate": "Page translation",
    "pages.search": "Search by meaning",
    "pages.generate_meta": "Generate page meta",
    "images.alt_text": "Image alt text",
    "prompts.template": "Prompt template run",
    "prompts.trial": "Prompt version trial",
    "prompts.run_template_batch": "Run template over rows",
    "prompts.trial_version": "Try a template version",
    "admin.test": "Test provider screen",
    "api.generate": "JSON API",
    "v1.chat": "/v1 chat completions",
    "v1.messages": "/v1 messages (Anthropic)",
    "v1.responses": "/v1 responses",
    "v1.embeddings": "/v1 embeddings",
    "v1.count_tokens": "/v1 token counts",
    "batch.estimate": "Batch estimate",
    "cli.ai_test": "ai_test command",
    "general": "Other",
}

# Error codes (AIProviderError.code) as sentences a site admin can act on.
ERROR_LABELS: dict[str, str] = {
    "provider_error": "Provider error",
    "provider_not_configured": "Provider not configured (no key or disabled)",
    "url_not_allowed": "Base URL not allowed",
    "unknown_provider": "Unknown provider",
    "invalid_request": "Invalid request",
    "model_not_found": "Model not found",
    "content_refused": "Content refused by the provider",
    "authentication_failed": "Key rejected by the provider",
    "permission_denied": "Key lacks permission",
    "insufficient_credits": "Out of credits at the provider",
    "budget_exceeded": "Budget exceeded",
    "policy_violation": "Blocked by the site policy",
    "rate_limited": "Rate limited",
    "provider_unavailable": "Provider unavailable (down or overloaded)",
    "provider_timeout": "Provider timed out",
    "empty_response": "Empty answer from the provider",
    "not_supported": "Not supported by this provider",
    "invalid_output": "Answer did not match the schema",
    "unsupported_parameter": "Unsupported parameter",
    "unpriced_model": "No price known for the model",
}


def _error_codes_by_class() -> dict[str, str]:
    """{"ProviderUnavailable": "provider_unavailable", ...}: the ledger stores the class name."""
    found: dict[str, str] = {}
    todo: list[type[errors.AIProviderError]] = [errors.AIProviderError]
    while todo:
        cls = todo.pop()
        found[cls.__name__] = cls.code
        todo.extend(cls.__subclasses__())
    found["UnpricedModel"] = "unpriced_model"  # a PolicyViolation of its own kind
    return found


_CLASS_CODES = _error_codes_by_class()


def service_label(code: str | None) -> str:
    """`pages.meta` -> "Page meta"; an unknown service as it is."""
    if not code:
        return "—"
    return SERVICE_LABELS.get(code, code)


def error_label(code: str | None) -> str:
    """An error code (`provider_unavailable`) or class name (`ProviderUnavailable`) as words."""
    if not code:
        return ""
    return ERROR_LABELS.get(_CLASS_CODES.get(code, code), code)


# Model vendors as OpenRouter names them ("meta-llama/..."): the test screen groups models by these.
VENDOR_LABELS: dict[str, str] = {
    "openai": "OpenAI",
    "anthropic": "Anthropic",
    "google": "Google",
    "meta-llama": "Meta Llama",
    "mistralai": "Mistral AI",
    "deepseek": "DeepSeek",
    "x-ai": "xAI",
    "qwen": "Qwen",
    "cohere": "Cohere",
    "microsoft": "Microsoft",
    "nvidia": "NVIDIA",
    "amazon": "Amazon",
    "perplexity": "Perplexity",
}


def vendor_label(vendor: str | None) -> str:
    """`meta-llama` -> "Meta Llama"; None (a model no vendor is known for) -> "Other models"."""
    if not vendor:
        return "Other models"
    if vendor in VENDOR_LABELS:
        return VENDOR_LABELS[vendor]
    known = registry.label(vendor)
    return known if known != vendor else vendor.replace("-", " ").replace("_", " ").title()


def provider_label(name: str | None, upstream: str | None = None) -> str:
    """`openrouter` -> "OpenRouter"; with the upstream a router chose: "OpenAI via OpenRouter"."""
    if not name:
        return "—"
    label = registry.label(name)
    return f"{upstream} via {label}" if upstream else label
