"""The guardrails the gateway runs, in order: before a call on the validated request, after it on the answer.

`before` masks PII in the user-supplied text (messages and system prompt) and checks the content
pulled into the prompt (user and tool messages) for injection; `after` moderates the answer. Each
returns the `Action`s taken, which the gateway records on the call's ledger rows. A guardrail is
one entry of `BEFORE` / `AFTER`: add one there, with its setting in `GuardrailSettings`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from integrations.ai.guardrails import injection, pii
from integrations.ai.guardrails import moderation as output_moderation
from integrations.ai.guardrails.actions import Action
from integrations.ai.guardrails.errors import PromptInjectionRefused
from integrations.ai.guardrails.settings import GuardrailSettings
from integrations.ai.providers.errors import AIProviderError
from integrations.ai.providers.types import AIRequest

Before = Callable[[GuardrailSettings, AIRequest, str], tuple[AIRequest, list[Action]]]


def _map_text(message: dict[str, Any], change: Callable[[str], str]) -> dict[str, Any]:
    """`message` with `change` applied to its text (a string, or the text parts of a list); else as it was."""
    content = message.get("content")
    if isinstance(content, str):
        return {**message, "content": change(content)}
    if isinstance(content, list):
        parts = [
            {**p, "text": change(p["text"])} if isinstance(p, dict) and isinstance(p.get("text"), str) else p
            for p in content
        ]
        return {**message, "content": parts}
    return message


def _texts(message: dict[str, Any]) -> list[str]:
    found: list[str] = []

    def keep(text: str) -> str:
        found.append(text)
        return text

    _map_text(message, keep)
    return found


def mask_pii(settings: GuardrailSettings, request: AIRequest, region: str) -> tuple[AIRequest, list[Action]]:
    if not settings.mask_pii:
        return request, []
    counts: dict[str, int] = {}

    def change(text: str) -> str:
        masked, found = pii.mask(text, region)
        for entity, number in found.items():
            counts[entity] = counts.get(entity, 0) + number
        return masked

    messages = tuple(_map_text(m, change) for m in request.messages)
    system = change(request.system_prompt) if request.system_prompt else request.system_prompt
    if not counts:
        return request, []
    detail = ", ".join(f"{n} {entity}" for entity, n in sorted(counts.items())) + f" ({pii.engine_name()})"
    return request.with_changes(messages=messages, system_prompt=system), [Action("pii_masking", "masked", detail)]


def check_injection(settings: GuardrailSettings, request: AIRequest, region: str) -> tuple[AIRequest, list[Action]]:
    if settings.injection == "off":
        return request, []
    found: list[str] = []
    for message in request.messages:
        if message.get("role") in ("user", "tool"):
            for text in _texts(message):
                found += [name for name in injection.matches(text) if name not in found]
    if not found:
        return request, []
    if settings.injection == "refuse":
        raise PromptInjectionRefused(
            "The prompt was refused: content pulled into it reads like an attempt to override the instructions "
            f"({', '.join(found)}). Remove that text, or set the site's prompt-injection check to flag only.",
            guardrail="prompt_injection",
            detail=", ".join(found),
        )
    return request, [Action("prompt_injection", "flagged", ", ".join(found))]


BEFORE: tuple[Before, ...] = (check_injection, mask_pii)  # checked on the text as written, then masked


def before(settings: GuardrailSettings, request: AIRequest, region: str = "US") -> tuple[AIRequest, list[Action]]:
    """Run every before-call guardrail; raises a `GuardrailRefused` when one refuses the call."""
    actions: list[Action] = []
    for guardrail in BEFORE:
        request, taken = guardrail(settings, request, region)
        actions += taken
    return request, actions


def after(settings: GuardrailSettings, provider: Any, text: str) -> tuple[list[Action], AIProviderError | None]:
    """Run every after-call guardrail on the answer's text: the actions, and the error withholding it (or None)."""
    if not settings.moderate_output:
        return [], None
    action, error = output_moderation.check(provider, text)
    return [action], error


def refusal_action(error: AIProviderError) -> Action:
    """The ledger entry of a before-call refusal."""
    return Action(getattr(error, "guardrail", "guardrail"), "refused", getattr(error, "detail", "") or error.code)
