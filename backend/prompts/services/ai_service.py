"""Prompt templates through the provider layer: render with variables, generate with the template's
model and parameters unless the caller overrides them."""

from __future__ import annotations

from typing import Any

from integrations.ai import AIService
from integrations.ai.ledger import usage
from integrations.ai.providers.base import GenerationResult
from integrations.ai.providers.errors import InvalidRequest

from ..models import PromptRun, PromptTemplate, PromptTemplateVersion, TemplateVariableError


class AIContentService:
    def __init__(self, site: Any = None) -> None:
        self.site = site
        self.last_version: PromptTemplateVersion | None = None  # the version the last generate() ran

    def render(self, template: PromptTemplate | PromptTemplateVersion, variables: dict[str, Any]) -> str:
        try:
            return template.render(variables)
        except TemplateVariableError as exc:
            raise InvalidRequest(str(exc)) from None

    def generate(
        self,
        template: PromptTemplate,
        variables: dict[str, Any],
        model: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        site: Any = None,
        version: PromptTemplateVersion | None = None,
    ) -> GenerationResult:
        """Run the template's production version (or `version`, e.g. its draft); `result.version` says which."""
        version = version or template.active_version()
        source: Any = version if version is not None else template
        prompt = self.render(source, variables)
        site = site if site is not None else (self.site if self.site is not None else template.site_id)
        label = f"Prompt template: {template} {version.display if version else ''}".strip()
        with usage.attributed_to(template, label=label):
            result = AIService(site=site, service="prompts.template").generate_content(
                prompt,
                model=model or source.default_model or None,
                max_tokens=max_tokens if max_tokens is not None else source.max_tokens,
                temperature=temperature if temperature is not None else source.temperature,
                system_prompt=source.system_prompt or None,
            )
        self.last_version = version
        return result

    def save_run(
        self,
        template: PromptTemplate,
        site_id: int,
        variables: dict[str, Any],
        output: str,
        result: GenerationResult | None = None,
        user: Any = None,
        version: PromptTemplateVersion | None = None,
    ) -> PromptRun:
        """Keep `output` (perhaps edited) with what generating it took: model, provider, tokens, cost,
        and the request id that finds its rows in the usage ledger."""
        return PromptRun.objects.create(
            template=template,
            version=version,
            site_id=site_id,
            variables=variables,
            output=output,
            model=result.model if result else "",
            provider=result.provider if result else "",
            prompt_tokens=result.prompt_tokens if result else 0,
            completion_tokens=result.completion_tokens if result else 0,
            total_tokens=result.total_tokens if result else 0,
            cost=result.cost if result else None,
            request_id=(result.request_id or "")[:200] if result else "",
            created_by=user,
        )
