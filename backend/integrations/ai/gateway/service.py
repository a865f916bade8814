"""`AIService`: the one call CMS code makes to generate text.

It keeps the original plan's signature, `generate_content(prompt, provider=None, model=None,
max_tokens=1000, temperature=0.7)`, and runs every call — plain, streamed or batched — through one
pipeline: prepare (snapshot, provider, one validation, model) -> cache -> budget -> chain (failover
along the site's chain, skipping providers in cooldown) -> ledger (one row per attempt).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from integrations.ai.gateway import response_cache
from integrations.ai.gateway.factory import ProviderFactory
from integrations.ai.governance import admission as governance
from integrations.ai.governance import budget, callers
from integrations.ai.ledger import pricing, usage
from integrations.ai.observability import calls as observed
from integrations.ai.providers import capabilities, conversation
from integrations.ai.providers.base import AIRequest, BaseProvider, GenerationResult, StreamingResult, check_text
from integrations.ai.providers.errors import (
    AIProviderError,
    AuthenticationFailed,
    InsufficientCredits,
    InvalidRequest,
    ModelNotFound,
    PermissionDenied,
    ProviderNotConfigured,
    ProviderUnavailable,
    RateLimited,
    UnknownProvider,
)
from integrations.ai.runtime import pauses
from integrations.ai.sites.context import site_id_of
from integrations.ai.sites.site_config import SiteSnapshot, get_snapshot

logger = logging.getLogger("integrations.ai")

# Failures where another provider may well succeed; request errors (bad input, unknown model,
# moderation) would fail the same way everywhere and surface at once.
FAILOVER_ERRORS = (ProviderUnavailable, RateLimited, InsufficientCredits, AuthenticationFailed, PermissionDenied)


@dataclass(frozen=True)
class Prepared:
    """A call after the pipeline's first step: whose settings, which provider, the validated request."""

    snapshot: SiteSnapshot
    primary: BaseProvider
    request: AIRequest
    resolved: str  # the primary provider's id for the requested model

    @property
    def requested(self) -> str:
        return self.request.model or self.resolved


@dataclass
class ChainState:
    """What walking a failover chain left behind: the last failure, and the candidates skipped and why."""

    last_error: AIProviderError | None = None
    skipped: list[str] = field(default_factory=list)  # cooling down
    refused: list[AIProviderError] = field(default_factory=list)  # by the site's policy


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
        """Who serves this call: an explicit provider; else the site's (or AI_PROVIDER's) resolved one —
        which, for a router such as OpenRouter, serves every model, and otherwise serves the model when it
        can; else the model decides (ProviderFactory.get_provider_for_model)."""
        if provider:
            return ProviderFactory.create_provider(provider, self.site_id)
        if not model or self.provider_type:
            return self.provider
        try:
            chosen = self.provider
        except ProviderNotConfigured:
            return ProviderFactory.get_provider_for_model(model, self.site_id)
        if chosen.spec.serves_any_model:
            return chosen
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
        return [{"role": "user", "content": prompt}]  # its text is checked once, in validate_request

    # -- the pipeline: prepare -> cache -> budget -> chain -> ledger ---------------------------------
    def prepare(
        self,
        messages: list[dict[str, str]],
        provider: str | None = None,
        model: str | None = None,
        max_tokens: int = 1000,
        temperature: float = 0.7,
        system_prompt: str | None = None,
        **options: Any,
    ) -> Prepared:
        """The first step of every call: the site's snapshot, the provider, the request validated once."""
        for name, value in (("model", model), ("provider", provider)):  # before they are looked up anywhere
            if value is not None:
                if not isinstance(value, str):
                    raise InvalidRequest(f"{name} must be a string.")
                check_text(value, name)
        snapshot = get_snapshot(self.site_id)
        primary = self.provider_for(provider, model)
        request = primary.validate_request(
            AIRequest.of(messages, model, max_tokens, temperature, system_prompt, **options)
        )
        resolved = primary.resolve_model(model)
        capabilities.require(primary, request, resolved)  # tools, schema, images: refused before any call
        return Prepared(snapshot, primary, request, resolved)

    def _admit(self, prep: Prepared) -> governance.Admission:
        """Rate limits and budget windows for one call (governance.admit); a refusal is recorded and raised."""
        request = prep.request
        return governance.admit(
            self,
            prep.snapshot,
            prep.primary,
            request.model,
            prep.resolved,
            conversation.for_estimate(request, prep.primary.kind, prep.resolved),
            request.system_prompt,
            request.max_tokens,
            check_budget=not self._budget_checked,
        )

    def _reserve(self, prep: Prepared, requests: list[AIRequest] | None = None) -> governance.Admission | None:
        """Reserve a batch's worst-case cost in every spend cap (monthly, daily, weekly, its service's) at once."""
        snapshot = prep.snapshot
        if self._budget_checked or not (governance.has_caps(snapshot) or governance.own_windows(snapshot)):
            return None
        governance.check_priced(self.site_id, self.service, prep.requested, prep.primary, snapshot, prep.resolved)
        price = self.price_for(snapshot, prep.primary, prep.resolved)
        estimate = sum(
            (
                budget.estimate_cost(price, list(r.messages), r.system_prompt, r.max_tokens)
                for r in (requests or [prep.request])
            ),
            Decimal(0),
        )
        return governance.reserve_spend(
            self.site_id, self.service, prep.requested, prep.primary.name, snapshot, estimate
        )

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
            self.messages_for(prompt),
            provider=provider,
            model=model,
            max_tokens=max_tokens,
            temperature=temperature,
            system_prompt=system_prompt,
            **kwargs,
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
        if kwargs.get("response_schema") is not None:  # validated JSON, one corrective retry
            from integrations.ai.gateway.structured import complete_json

            return complete_json(
                self,
                messages,
                provider=provider,
                model=model,
                max_tokens=max_tokens,
                temperature=temperature,
                system_prompt=system_prompt,
                cache=cache,
                failover=failover,
                **kwargs,
            )
        prep = self.prepare(messages, provider, model, max_tokens, temperature, system_prompt, **kwargs)
        return self.execute(prep, cache=cache, failover=failover)

    @observed.traced_call
    def execute(self, prep: Prepared, *, cache: bool | None = None, failover: bool = True) -> GenerationResult:
        """The rest of the pipeline for a prepared call: cache -> budget -> chain -> ledger."""
        request = prep.request
        cache_key = None
        if response_cache.should_cache(request.temperature, cache):
            params = {
                "max_tokens": request.max_tokens,
                "temperature": request.temperature,
                "system": request.system_prompt,
                **request.options,
                "beyond_text": repr((request.tools, request.tool_choice, request.response_schema)),
            }
            cache_key = response_cache.key_for(
                self.site_id, prep.primary.name, prep.resolved, list(request.messages), params
            )
            hit = response_cache.get(cache_key)
            if hit is not None:  # served free, so even a site at its budget gets it
                record = usage.CallRecord(self.site_id, self.service, prep.requested)
                usage.write_ledger(record, prep.snapshot.prices, cached=hit)
                return hit

        admission = self._admit(prep)
        with usage.collecting(self.site_id, self.service, prep.requested, prep.request) as record:
            try:
                result = self._run_chain(prep, failover)
            finally:
                usage.write_ledger(record, prep.snapshot.prices)
                admission.settle(record, prep.snapshot.prices)
        result.attempts = len(record.attempts)
        if cache_key is not None:
            response_cache.put(cache_key, result)
        return result

    @staticmethod
    def price_for(snapshot: SiteSnapshot, provider: BaseProvider, model: str) -> usage.Price | None:
        """USD per million tokens of `model` on `provider`, resolved as the settlement will (`pricing`):
        an override, a free endpoint, the genai-prices catalogue; None when unpriced."""
        return pricing.resolve(snapshot.prices, provider.name, model).price

    def _candidates(self, prep: Prepared, failover: bool) -> Iterator[tuple[BaseProvider, AIRequest]]:
        """The primary, then the site's fallback chain, each with the request fitted to it."""
        snapshot, request = prep.snapshot, prep.request
        yield prep.primary, self._with_site_options(snapshot, prep.primary, request)
        if not failover:
            return
        for provider_type, chain_model in snapshot.fallback_chain:
            try:
                candidate = ProviderFactory.create_provider(provider_type, self.site_id)
            except (ProviderNotConfigured, UnknownProvider) as exc:
                logger.warning("fallback %s skipped: %s", provider_type, exc)
                continue
            model: str | None = chain_model or request.model
            if not chain_model:
                try:  # the requested model, if this provider can serve it; else its default
                    candidate.resolve_model(request.model)
                except ModelNotFound:
                    model = None
            adapted = candidate.adapt(request.with_changes(model=model))
            if candidate.kind == "openrouter":  # a router takes the caller's options as they are
                adapted = adapted.with_changes(options=dict(request.options))
            yield candidate, self._with_site_options(snapshot, candidate, adapted)

    @staticmethod
    def _with_site_options(snapshot: SiteSnapshot, provider: BaseProvider, request: AIRequest) -> AIRequest:
        """The site's OpenRouter fallback models and routing added, and its data policy applied, for OpenRouter."""
        if provider.kind != "openrouter":
            return request
        options = dict(request.options)
        for key, value in snapshot.openrouter_options.items():
            options.setdefault(key, value)
        return request.with_changes(options=governance.options_for(snapshot, provider, options))

    def _usable(
        self, prep: Prepared, failover: bool, chain: ChainState
    ) -> Iterator[tuple[BaseProvider, AIRequest, int]]:
        """The candidates to try, in order, each with its recent failure count: those the site's policy
        refuses (never a provider failure) and those cooling down are skipped and noted in `chain`.
        Plain calls and streams both walk the chain through here."""
        for candidate, request in self._candidates(prep, failover):
            if (refusal := governance.candidate_refusal(prep.snapshot, candidate, request.model)) is not None:
                chain.refused.append(refusal)
                continue
            if capabilities.refusal(candidate, request, candidate.resolve_model(request.model)) is not None:
                logger.info("%s skipped: its model cannot serve this request", candidate.name)
                continue
            cooling, failures = pauses.health(self.site_id, candidate.name)
            if cooling:
                chain.skipped.append(candidate.name)
                continue
            yield candidate, request, failures

    def _run_chain(self, prep: Prepared, failover: bool) -> GenerationResult:
        chain = ChainState()
        for candidate, request, failures in self._usable(prep, failover, chain):
            try:
                result = candidate.execute(request)
            except FAILOVER_ERRORS as exc:
                self._failed(chain, candidate, exc)
                continue
            pauses.record_success(self.site_id, candidate.name, failures)
            return result
        raise self._chain_exhausted(prep, chain)

    def _failed(self, chain: ChainState, candidate: BaseProvider, exc: AIProviderError) -> None:
        """A candidate failed after its retries: count it towards its cooldown; the next one is tried."""
        chain.last_error = exc
        if exc.retryable and pauses.record_failure(self.site_id, candidate.name):
            logger.warning("%s cools down for site %s after repeated failures", candidate.name, self.site_id)
        logger.warning("%s failed (%s); trying the next provider", candidate.name, type(exc).__name__)

    def _chain_exhausted(self, prep: Prepared, chain: ChainState) -> AIProviderError:
        if chain.last_error is not None:
            return chain.last_error
        if chain.refused:  # recorded as a refusal in the ledger, with the rule that refused it
            return governance.refuse(self.site_id, self.service, prep.requested, prep.primary.name, chain.refused[0])
        return ProviderUnavailable(
            f"Every provider for this site is cooling down after repeated failures ({', '.join(chain.skipped)}); "
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
    ) -> GatewayStream:
        """Yield text deltas as they arrive (iterate it); `.result` has the totals, and the usage rows are
        written, when the stream ends.

        A provider that fails before the first delta reached the caller is retried and failed over
        like a plain call; after a delta, the caller gets the typed error and the ledger keeps the
        partial usage.
        """
        return self.stream_messages(
            self.messages_for(prompt), provider, model, max_tokens, temperature, system_prompt, **kwargs
        )

    def stream_messages(
        self,
        messages: list[dict[str, str]],
        provider: str | None = None,
        model: str | None = None,
        max_tokens: int = 1000,
        temperature: float = 0.7,
        system_prompt: str | None = None,
        **kwargs: Any,
    ) -> GatewayStream:
        """`generate_stream` over a whole conversation (`[{role, content}, ...]`, as `complete` takes)."""
        prep = self.prepare(messages, provider, model, max_tokens, temperature, system_prompt, **kwargs)
        if (refusal := governance.candidate_refusal(prep.snapshot, prep.primary, model)) is not None:
            raise governance.refuse(self.site_id, self.service, prep.requested, prep.primary.name, refusal)
        if prep.request.response_schema is not None:
            raise InvalidRequest(
                "response_schema is for generate_content/generate_json: a stream cannot be "
                "validated before it reaches you."
            )
        capabilities.require(prep.primary, prep.request, prep.resolved, streaming=True)
        return GatewayStream(self, prep, self._admit(prep))

    # -- beyond text: structured output and embeddings (the same pipeline; see structured.py, embeddings.py) --
    def generate_json(self, prompt: str, schema: dict[str, Any], **kwargs: Any) -> Any:
        """JSON that validates against `schema` (a JSON schema of an object), parsed; `InvalidOutput` when
        the model's answer does not match it after one corrective retry."""
        return self.generate_content(prompt, response_schema=schema, **kwargs).parsed

    def embed(self, texts: list[str], model: str | None = None, provider: str | None = None) -> Any:
        """One vector per text, in order (`EmbeddingResult`), batched to the vendor's limits, cached per
        site by (model, text), priced and ledgered like any call."""
        from integrations.ai.gateway.embeddings import embed

        return embed(self, texts, model=model, provider=provider)

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
        # Before the workers start, in the caller's thread: the snapshot warmed, the provider's pooled
        # client built once, and the budget reserved once for every prompt that is valid.
        run_options = {k: params.pop(k) for k in ("cache", "failover") if k in params}
        preps: dict[int, Prepared] = {}
        for item in items:
            try:
                preps[item.index] = self.prepare(self.messages_for(item.prompt), **params)
            except AIProviderError as exc:
                item.error = exc
        reservation = None
        if preps:
            first = next(iter(preps.values()))
            first.primary.client  # noqa: B018 - import the SDK and build the client once, not per worker
            reservation = self._reserve(first, [p.request for p in preps.values()])
        rows: list = []
        worker = AIService(site=site_id, provider=self.provider_type, service=self.service)
        worker._budget_checked = True  # reserved above, for the whole batch
        attribution = usage.current_attribution()  # the workers' ledger rows carry the caller's content
        per_item = usage.item_attributions()  # or each item its own (`usage.attributed_each`)
        key, editor = callers.current(), callers.current_editor()  # threads do not inherit who is calling

        def run(item: BatchItem) -> BatchItem:
            if item.error is None:
                own = per_item[item.index] if item.index < len(per_item) else None
                with (
                    usage.deferred(rows),
                    usage.carrying(own or attribution),
                    callers.acting_as(key),
                    callers.acting_for(editor),
                ):
                    try:
                        item.result = worker.execute(preps[item.index], **run_options)
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
                reservation.settle_cost(spent)


class GatewayStream:
    """A stream through the chain: retried and failed over until the first delta; ledgered when done."""

    def __init__(self, service: AIService, prep: Prepared, admission: governance.Admission) -> None:
        self.service = service
        self.prep = prep
        self.admission = admission
        self.stream: StreamingResult | None = None
        self.record: usage.CallRecord | None = None

    @property
    def result(self) -> GenerationResult | None:
        return self.stream.result if self.stream is not None else None

    @observed.traced_stream
    def __iter__(self) -> Iterator[str]:
        service, prep = self.service, self.prep
        with usage.collecting(service.site_id, service.service, prep.requested, prep.request) as record:
            self.record = record
            try:
                yield from self._through_chain()
            finally:
                usage.write_ledger(record, prep.snapshot.prices)
                self.admission.settle(record, prep.snapshot.prices)

    def _price_broken(self) -> None:
        """A stream that broke after its first delta never got the vendor's usage (nor OpenRouter's cost):
        its prompt tokens are estimated (~4 characters each), so the ledger prices it at the site's price
        resolution (`pricing`) like any call, or charges it as unpriced: a broken stream is never free."""
        attempt = self.record.attempts[-1] if self.record is not None and self.record.attempts else None
        partial = attempt.result if attempt is not None else None
        if partial is None or partial.cost is not None or partial.prompt_tokens:
            return
        partial.prompt_tokens = max(1, self.record.size[0] // 4) if self.record is not None else 1
        partial.total_tokens = partial.prompt_tokens + partial.completion_tokens

    def _through_chain(self) -> Iterator[str]:
        service = self.service
        chain = ChainState()
        for candidate, request, failures in service._usable(self.prep, True, chain):
            attempt = 0
            while True:
                attempt += 1
                self.stream = candidate.stream(request, attempt=attempt)
                try:
                    yield from self.stream
                except AIProviderError as exc:
                    if self.stream.delivered:  # half an answer went out: it cannot be replayed
                        self._price_broken()
                        raise
                    delay = candidate._retry_delay(exc, attempt)
                    if delay is not None:
                        candidate.hooks.sleep(delay)
                        continue
                    if not isinstance(exc, FAILOVER_ERRORS):
                        raise
                    service._failed(chain, candidate, exc)
                    break
                pauses.record_success(service.site_id, candidate.name, failures)
                return
        raise service._chain_exhausted(self.prep, chain)
