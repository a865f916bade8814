"""`AIService`: the one call CMS code makes to generate text.

It keeps the original plan's signature, `generate_content(prompt, provider=None, model=None,
max_tokens=1000, temperature=0.7)`, and does everything a gateway should around it: the site's
budget check, the response cache, the provider chosen for the site, failover along the site's
chain (skipping providers in cooldown), and one usage-ledger row per attempt.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from . import budget, governance, pauses, response_cache, usage
from .context import site_id_of
from .providers.base import BaseProvider, GenerationResult, StreamingResult, check_text
from .providers.errors import (
    AIProviderError,
    AuthenticationFailed,
    InsufficientCredits,
    InvalidRequest,
    ModelNotFound,
    PermissionDenied,
    ProviderNotConfigured,
    ProviderUnavailable,
    RateLimited,
)
from .providers.factory import ProviderFactory
from .site_config import SiteSnapshot, get_snapshot

logger = logging.getLogger("integrations.ai")

# Failures where another provider may well succeed; request errors (bad input, unknown model,
# moderation) would fail the same way everywhere and surface at once.
FAILOVER_ERRORS = (ProviderUnavailable, RateLimited, InsufficientCredits, AuthenticationFailed, PermissionDenied)


@dataclass
class BatchItem:
    """One prompt's outcome in a batch: a result or the error it raised, never both."""

    index: int
    prompt: str
    result: GenerationResult | None = None
    error: AIProviderError | None = None

    @property
    def ok(self) -> bool:
        return self.result is not None


class AIService:
    """General text generation for one site (the current site when none is given)."""

    def __init__(self, site: Any = None, provider: str | None = None, service: str = "general") -> None:
        self.site = site
        self.provider_type = provider
        self.service = service  # names the caller in logs and the usage ledger
        self._budget_checked = False  # batch workers: the batch checked the budget once up front

    @property
    def site_id(self) -> int | None:
        return site_id_of(self.site)

    @property
    def provider(self) -> BaseProvider:
        """The site's provider as its settings are now.

        Resolved from the current settings snapshot on every use (the factory memoises it per
        snapshot, so this costs a dict lookup), never kept on the instance: a long-lived service
        follows a switched provider or a removed key within AI_SETTINGS_CHECK_INTERVAL.
        """
        return ProviderFactory.create_provider(self.provider_type, self.site_id)

    def provider_for(self, provider: str | None, model: str | None) -> BaseProvider:
        """Who serves this call: an explicit provider; else the site's (or AI_PROVIDER's) chosen one when it
        can serve the model; else the model decides (ProviderFactory.get_provider_for_model)."""
        if provider:
            return ProviderFactory.create_provider(provider, self.site_id)
        if not model or self.provider_type:
            return self.provider
        try:
            chosen = self.provider
        except ProviderNotConfigured:
            return ProviderFactory.get_provider_for_model(model, self.site_id)
        if chosen.resolution is not None and not chosen.resolution.detected:
            try:
                chosen.resolve_model(model)
                return chosen
            except ModelNotFound:
                pass
        return ProviderFactory.get_provider_for_model(model, self.site_id)

    @staticmethod
    def messages_for(prompt: str) -> list[dict[str, str]]:
        if not isinstance(prompt, str) or not prompt.strip():
            raise InvalidRequest("The prompt is empty: give the text to generate from.")
        check_text(prompt, "The prompt")
        return [{"role": "user", "content": prompt}]

    # -- generation ------------------------------------------------------------------------------
    def generate_content(
        self,
        prompt: str,
        provider: str | None = None,
        model: str | None = None,
        max_tokens: int = 1000,
        temperature: float = 0.7,
        system_prompt: str | None = None,
        **kwargs: Any,
    ) -> GenerationResult:
        return self.complete(
            self.messages_for(prompt), provider=provider, model=model, max_tokens=max_tokens,
            temperature=temperature, system_prompt=system_prompt, **kwargs,
        )

    def complete(
        self,
        messages: list[dict[str, str]],
        provider: str | None = None,
        model: str | None = None,
        max_tokens: int = 1000,
        temperature: float = 0.7,
        system_prompt: str | None = None,
        *,
        cache: bool | None = None,
        failover: bool = True,
        **kwargs: Any,
    ) -> GenerationResult:
        """Generate from a whole conversation (`[{role, content}, ...]`).

        `cache=True/False` forces the response cache on or off (default: on at temperature 0);
        `failover=False` uses only the chosen provider.
        """
        snapshot = get_snapshot(self.site_id)
        primary = self.provider_for(provider, model)
        clean = primary.validate(messages, max_tokens, temperature, system_prompt, kwargs)
        resolved = primary.resolve_model(model)

        cache_key = None
        if response_cache.should_cache(temperature, cache):
            params = {"max_tokens": max_tokens, "temperature": temperature, "system": system_prompt, **kwargs}
            cache_key = response_cache.key_for(self.site_id, primary.name, resolved, clean, params)
            hit = response_cache.get(cache_key)
            if hit is not None:  # served free, so even a site at its budget gets it
                record = usage.CallRecord(self.site_id, self.service, model or resolved)
                usage.write_ledger(record, snapshot.prices, cached=hit)
                return hit

        admission = governance.admit(self, snapshot, primary, model, resolved, clean, system_prompt, max_tokens,
                                     check_budget=not self._budget_checked)
        with usage.collecting(self.site_id, self.service, model or resolved) as record:
            try:
                result = self._run_chain(snapshot, primary, model, clean, max_tokens, temperature,
                                         system_prompt, kwargs, failover)
            finally:
                usage.write_ledger(record, snapshot.prices)
                admission.settle(record, snapshot.prices)
        result.attempts = len(record.attempts)
        if cache_key is not None:
            response_cache.put(cache_key, result)
        return result

    @staticmethod
    def price_for(snapshot: SiteSnapshot, provider: BaseProvider, model: str) -> tuple[Decimal, Decimal] | None:
        """USD per million (prompt, completion) tokens: the price table, else OpenRouter's catalogue."""
        price = snapshot.prices.get((provider.name, model))
        if price is not None or provider.name != "openrouter":
            return price
        try:
            info = next((m for m in provider.get_available_models() if m.id == model), None)
        except AIProviderError:
            return None
        if info is None or info.prompt_price is None or info.completion_price is None:
            return None
        return info.prompt_price * 1_000_000, info.completion_price * 1_000_000

    def _candidates(
        self, snapshot: SiteSnapshot, primary: BaseProvider, model: str | None, failover: bool
    ) -> Iterator[tuple[BaseProvider, str | None]]:
        yield primary, model
        if not failover:
            return
        for provider_type, chain_model in snapshot.fallback_chain:
            try:
                candidate = ProviderFactory.create_provider(provider_type, self.site_id)
            except ProviderNotConfigured as exc:
                logger.warning("fallback %s skipped: %s", provider_type, exc)
                continue
            if chain_model:
                yield candidate, chain_model
                continue
            try:  # the requested model, if this provider can serve it; else its default
                candidate.resolve_model(model)
                yield candidate, model
            except ModelNotFound:
                yield candidate, None

    @staticmethod
    def _options_for(snapshot: SiteSnapshot, provider: BaseProvider, kwargs: dict[str, Any]) -> dict[str, Any]:
        """The caller's options, plus the site's OpenRouter fallback models and routing for OpenRouter."""
        options = dict(kwargs)
        if provider.name == "openrouter":
            for key, value in snapshot.openrouter_options.items():
                options.setdefault(key, value)
        return governance.options_for(snapshot, provider, options)

    def _run_chain(self, snapshot, primary, model, messages, max_tokens, temperature, system_prompt, kwargs,
                   failover) -> GenerationResult:
        last_error: AIProviderError | None = None
        skipped: list[str] = []
        refused: list[AIProviderError] = []
        for candidate, candidate_model in self._candidates(snapshot, primary, model, failover):
            if (refusal := governance.candidate_refusal(snapshot, candidate, candidate_model)) is not None:
                refused.append(refusal)  # the site's policy: skipped before any request, never a failure
                continue
            cooling, failures = pauses.health(self.site_id, candidate.name)
            if cooling:
                skipped.append(candidate.name)
                continue
            options = self._options_for(snapshot, candidate, kwargs)
            if candidate is not primary and candidate.name != "openrouter":
                options = {k: v for k, v in options.items() if k in candidate.supported_options}
            try:
                result = candidate.generate_content(
                    messages, model=candidate_model, max_tokens=max_tokens,
                    temperature=min(temperature, candidate.temperature_range[1]),
                    system_prompt=system_prompt, **options,
                )
            except FAILOVER_ERRORS as exc:
                last_error = exc
                if exc.retryable and pauses.record_failure(self.site_id, candidate.name):
                    logger.warning("%s cools down for site %s after repeated failures", candidate.name, self.site_id)
                logger.warning("%s failed (%s); trying the next provider", candidate.name, type(exc).__name__)
                continue
            pauses.record_success(self.site_id, candidate.name, failures)
            return result
        if last_error is not None:
            raise last_error
        if refused:
            raise governance.refuse(self.site_id, self.service, model or "", primary.name, refused[0])
        raise ProviderUnavailable(
            f"Every provider for this site is cooling down after repeated failures ({', '.join(skipped)}); "
            "retry shortly or add a fallback provider."
        )

    def generate_stream(
        self,
        prompt: str,
        provider: str | None = None,
        model: str | None = None,
        max_tokens: int = 1000,
        temperature: float = 0.7,
        system_prompt: str | None = None,
        **kwargs: Any,
    ) -> Iterator[str]:
        """Yield text deltas as they arrive; the usage row is written when the stream ends."""
        snapshot = get_snapshot(self.site_id)
        chosen = self.provider_for(provider, model)
        messages = chosen.validate(self.messages_for(prompt), max_tokens, temperature, system_prompt, kwargs)
        resolved = chosen.resolve_model(model)
        if (refusal := governance.candidate_refusal(snapshot, chosen, model)) is not None:
            raise governance.refuse(self.site_id, self.service, model or resolved, chosen.name, refusal)
        admission = governance.admit(self, snapshot, chosen, model, resolved, messages, system_prompt, max_tokens)
        options = self._options_for(snapshot, chosen, kwargs)
        stream: StreamingResult = chosen.generate_stream(
            messages, model=model, max_tokens=max_tokens, temperature=temperature,
            system_prompt=system_prompt, **options,
        )
        return _LedgeredStream(stream, self, snapshot, model or stream.model, admission)

    # -- batches -----------------------------------------------------------------------------------
    def generate_batch(
        self,
        prompts: list[str],
        concurrency: int = 8,
        on_item: Callable[[BatchItem], None] | None = None,
        **params: Any,
    ) -> list[BatchItem]:
        """Generate for many prompts at once, in input order, each error kept with its item.

        Threads share the provider (one SDK client, one connection pool) and the rate-limit
        pause: when one item is told to wait, the others wait before their next request.
        """
        if concurrency < 1:
            raise InvalidRequest("concurrency must be at least 1.")
        items = [BatchItem(index=i, prompt=p) for i, p in enumerate(prompts)]
        site_id = self.site_id
        # Everything that touches the database happens here, in the caller's thread: the snapshot
        # is warmed, the budget checked once, and the workers' ledger rows written in one go.
        snapshot = get_snapshot(site_id)
        primary = self.provider_for(params.get("provider"), params.get("model"))
        primary.client  # noqa: B018 - import the SDK and build the pooled client once, not in every worker
        reservation = None
        if snapshot.monthly_budget is not None:
            price = self.price_for(snapshot, primary, primary.resolve_model(params.get("model")))
            max_tokens = params.get("max_tokens", 1000)
            estimate = sum(
                (budget.estimate_cost(price, [{"content": p}], params.get("system_prompt"), max_tokens)
                 for p in prompts),
                Decimal(0),
            )
            reservation = budget.reserve(site_id, snapshot.monthly_budget, estimate)
        rows: list = []

        def run(item: BatchItem) -> BatchItem:
            worker = AIService(site=site_id, provider=self.provider_type, service=self.service)
            worker._budget_checked = True
            with usage.deferred(rows):
                try:
                    item.result = worker.generate_content(item.prompt, **params)
                except AIProviderError as exc:
                    item.error = exc
            if on_item is not None:
                on_item(item)
            return item

        try:
            if concurrency == 1 or len(items) <= 1:
                return [run(item) for item in items]
            with ThreadPoolExecutor(max_workers=min(concurrency, len(items)), thread_name_prefix="ai-batch") as pool:
                return list(pool.map(run, items))
        finally:
            spent = usage.submit_deferred(rows)  # to the ledger writer, off this thread
            if reservation is not None:
                reservation.settle(spent)


class _LedgeredStream:
    """Wraps a provider stream so its usage row is written once it finishes or fails."""

    def __init__(
        self, stream: StreamingResult, service: AIService, snapshot: SiteSnapshot, requested: str,
        admission: governance.Admission,
    ) -> None:
        self.stream = stream
        self.service = service
        self.snapshot = snapshot
        self.requested = requested
        self.admission = admission

    @property
    def result(self) -> GenerationResult | None:
        return self.stream.result

    def __iter__(self) -> Iterator[str]:
        with usage.collecting(self.service.site_id, self.service.service, self.requested) as record:
            try:
                yield from self.stream
            finally:
                usage.write_ledger(record, self.snapshot.prices)
                self.admission.settle(record, self.snapshot.prices)
