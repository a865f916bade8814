"""`AIService`: the one call CMS code makes to generate text.

It keeps the original plan's signature, `generate_content(prompt, provider=None, model=None,
max_tokens=1000, temperature=0.7)`, and runs every call — plain, streamed or batched — through one
pipeline: prepare (snapshot, provider, one validation, model) -> guardrails before (PII masking,
prompt-injection check) -> cache -> budget -> chain (failover along the site's chain, skipping
providers in cooldown) -> guardrails after (output moderation) -> ledger (one row per attempt, with
what the guardrails did).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from integrations.ai import pricing
from integrations.ai.gateway import response_cache
from integrations.ai.gateway.factory import ProviderFactory
from integrations.ai.gateway.structured import problems
from integrations.ai.governance import admission as governance
from integrations.ai.guardrails import registry as guardrails
from integrations.ai.guardrails.errors import GuardrailRefused
from integrations.ai.ledger import usage
from integrations.ai.observability import calls as observed
from integrations.ai.providers import capabilities, conversation
from integrations.ai.providers.base import AIRequest, BaseProvider, GenerationResult, StreamingResult, check_text
from integrations.ai.providers.errors import (
    AIProviderError,
    AuthenticationFailed,
    BudgetExceeded,
    InsufficientCredits,
    InvalidOutput,
    InvalidRequest,
    ModelNotFound,
    Overloaded,
    PermissionDenied,
    ProviderNotConfigured,
    ProviderUnavailable,
    RateLimited,
    UnknownProvider,
)
from integrations.ai.runtime import conf, pauses, stream_slots
from integrations.ai.runtime.offload import offload
from integrations.ai.sites import callers
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
    # what the before-call guardrails did ({guardrail, outcome, detail}); set by `AIService.guarded`
    guardrails: tuple[dict[str, str], ...] = ()
    guarded: bool = False

    @property
    def requested(self) -> str:
        return self.request.model or self.resolved


@dataclass
class ChainState:
    """What walking a failover chain left behind: the last failure, and the candidates skipped and why."""

    last_error: AIProviderError | None = None
    skipped: list[str] = field(default_factory=list)  # cooling down
    refused: list[AIProviderError] = field(default_factory=list)  # by the site's policy, or its caps


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


@dataclass
class OpenedCall:
    """A plain call opened off the event loop (`AIService.open_call`): prepared, guarded, admitted, its
    failover chain walked to the first usable candidate; `aexecute_opened` runs the rest on the loop."""

    state: tuple[Prepared, str | None, GenerationResult | None, governance.Admission | None, _Walk | None]
    failover: bool

    @property
    def prep(self) -> Prepared:
        return self.state[0]


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
            if chosen.spec.model_ids != "passthrough" and chosen.mapper.logical_name(model) is None:
                # a model the provider would take on trust (no prefix, no mapping): a local endpoint of the
                # site that names it serves it instead (ProviderFactory.endpoint_for_model)
                endpoint = ProviderFactory.endpoint_for_model(model, self.site_id)
                if endpoint is not None:
                    return endpoint
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

    def guarded(self, prep: Prepared) -> Prepared:
        """The site's before-call guardrails applied to a prepared call (once): its request with PII masked,
        the actions noted; a refusal (prompt injection) is recorded in the ledger and raised."""
        settings = prep.snapshot.guardrails
        if prep.guarded or not settings.before_call:
            return prep
        try:
            request, actions = guardrails.before(settings, prep.request, conf.pii_phone_region())
        except GuardrailRefused as exc:
            record = usage.CallRecord(
                self.site_id,
                self.service,
                prep.requested,
                refusal=(prep.primary.name, exc),
                guardrails=[guardrails.refusal_action(exc).as_dict()],
            )
            usage.write_ledger(record, prep.snapshot.prices)
            raise
        return replace(prep, request=request, guardrails=tuple(a.as_dict() for a in actions), guarded=True)

    def guard_answer(self, prep: Prepared, record: usage.CallRecord, result: GenerationResult) -> None:
        """The after-call guardrails on an answer (output moderation by the provider that served it): the
        actions go on the call's ledger rows; an answer they withhold raises its typed error."""
        settings = prep.snapshot.guardrails
        if not settings.moderate_output:
            return
        served = prep.primary
        if result.provider != served.name:  # a fallback served it
            served = ProviderFactory.create_provider(result.provider, self.site_id)
        actions, error = guardrails.after(settings, served, result.content or "")
        record.guardrails += [a.as_dict() for a in actions]
        if error is not None:
            raise error

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

    def _reserve(self, preps: list[Prepared], failover: bool = True) -> governance.Admission | None:
        """Reserve a batch's worst-case cost in every spend cap (monthly, daily, weekly, its service's) at once:
        each prompt at the dearest candidate of its failover chain, since its workers cannot re-reserve."""
        prep = preps[0]
        snapshot = prep.snapshot
        if self._budget_checked or not (governance.has_caps(snapshot) or governance.own_windows(snapshot)):
            return None
        governance.check_priced(self.site_id, self.service, prep.requested, prep.primary, snapshot, prep.resolved)
        estimate = sum((self._dearest(p, failover) for p in preps), Decimal(0))
        return governance.reserve_spend(
            self.site_id, self.service, prep.requested, prep.primary.name, snapshot, estimate
        )

    def _dearest(self, prep: Prepared, failover: bool) -> Decimal:
        """The worst case of a prepared call at the dearest candidate its chain may reach (policy and
        capabilities permitting; cooling down or not, as that changes while a batch runs)."""
        worst = governance.reservable(self.site_id, prep.snapshot, prep.primary, prep.request)
        for candidate, request in self._candidates(prep, failover):
            model = candidate.resolve_model(request.model)
            if governance.candidate_refusal(prep.snapshot, candidate, request.model) is None and (
                capabilities.refusal(candidate, request, model) is None
            ):
                worst = max(worst, governance.reservable(self.site_id, prep.snapshot, candidate, request))
        return worst

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
        """The rest of the pipeline for a prepared call: guardrails -> cache -> budget -> chain -> guardrails
        -> ledger."""
        prep, cache_key, hit, admission = self._open(prep, cache)
        if hit is not None:
            return hit
        assert admission is not None  # no hit: admitted
        with usage.collecting(self.site_id, self.service, prep.requested, prep.request) as record:
            record.guardrails = list(prep.guardrails)
            result: GenerationResult | None = None
            try:
                result = self._run_chain(prep, failover, admission)
            finally:
                self._close(prep, admission, record, result, cache_key)
        return result

    @observed.atraced_call
    async def aexecute(self, prep: Prepared, *, cache: bool | None = None, failover: bool = True) -> GenerationResult:
        """`execute` driven on an event loop: the same steps; what may touch the cache or database runs off
        the loop (`offload`), and only the upstream request is awaited on it."""
        # refusals are ledgered; the chain is walked to its first candidate in the same hop
        opened = OpenedCall(await offload(self._open_walked, prep, cache, failover), failover)
        return await self.aexecute_opened(opened)

    async def aexecute_opened(self, opened: OpenedCall) -> GenerationResult:
        """The rest of a call opened off the loop (`open_call`, `_open_walked`): the upstream request on the
        loop, then one hop to close it."""
        (prep, cache_key, hit, admission, walk), failover = opened.state, opened.failover
        if hit is not None:
            return hit
        assert admission is not None and walk is not None  # no hit: admitted
        with usage.collecting(self.site_id, self.service, prep.requested, prep.request) as record:
            record.guardrails = list(prep.guardrails)
            result: GenerationResult | None = None
            try:
                result = await self._arun_chain(prep, failover, admission, walk)
            finally:  # moderation is an HTTP call, settling may write: off the loop, in one hop
                await offload(self._close, prep, admission, record, result, cache_key)
        return result

    # -- the steps both drivers share ------------------------------------------------------------------
    def _open(
        self, prep: Prepared, cache: bool | None
    ) -> tuple[Prepared, str | None, GenerationResult | None, governance.Admission | None]:
        """Before the upstream request: the guardrails, the response cache, then the limits and the budget.
        Returns the guarded call, its cache key, a cache hit (then nothing is admitted) and its admission.
        One function, so the async driver leaves its event loop once for all of it."""
        prep = self.guarded(prep)
        cache_key, hit = self._cached(prep, cache)
        if hit is not None:
            return prep, cache_key, hit, None
        return prep, cache_key, None, self._admit(prep)

    def _open_walked(
        self, prep: Prepared, cache: bool | None, failover: bool
    ) -> tuple[Prepared, str | None, GenerationResult | None, governance.Admission | None, _Walk | None]:
        """`_open`, then (admitted) the failover chain walked to its first usable candidate on the same thread:
        the async driver leaves its event loop once before the upstream request, not twice. A failure of the
        walk is kept and raised at its first step, inside the call, which settles it (`_Walk.primed`)."""
        prep, cache_key, hit, admission = self._open(prep, cache)
        walk = None if admission is None else _Walk.primed(self, prep, failover, admission)
        return prep, cache_key, hit, admission, walk

    def _close(
        self,
        prep: Prepared,
        admission: governance.Admission,
        record: usage.CallRecord,
        result: GenerationResult | None,
        cache_key: str | None,
    ) -> None:
        """After the upstream request (`result` None: the chain failed): the after-call guardrails, then the
        ledger and the settlement whatever they decided, and an answer that passed them cached."""
        try:
            if result is not None:
                self.guard_answer(prep, record, result)
        finally:
            self._settle(prep, admission, record)
        if result is not None:
            result.attempts = len(record.attempts)
            if cache_key is not None:
                response_cache.put(cache_key, result)

    def _cached(self, prep: Prepared, cache: bool | None) -> tuple[str | None, GenerationResult | None]:
        """The response cache's key for this call (None: not cached) and its hit, ledgered as one."""
        request = prep.request
        if not response_cache.should_cache(request.temperature, cache):
            return None, None
        params = {
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "system": request.system_prompt,
            **request.options,
            "beyond_text": repr((request.tools, request.tool_choice, request.response_schema)),
            "guardrails": repr(prep.snapshot.guardrails),  # an answer cached before moderation was on
        }
        cache_key = response_cache.key_for(
            self.site_id, prep.primary.name, prep.resolved, list(request.messages), params
        )
        hit = response_cache.get(cache_key)
        if hit is not None:  # served free, so even a site at its budget gets it
            record = usage.CallRecord(self.site_id, self.service, prep.requested, guardrails=list(prep.guardrails))
            usage.write_ledger(record, prep.snapshot.prices, cached=hit)  # its row: cost 0, saved = hit.cost
            hit = replace(hit, cost=Decimal(0), cost_source="cache")  # what the ledger records for it
        return cache_key, hit

    @staticmethod
    def _settle(prep: Prepared, admission: governance.Admission, record: usage.CallRecord) -> None:
        """The ledger hand-off (no query) and the budget and token windows settled to what the call used."""
        record.budget_settled = admission.settles_in_db
        usage.write_ledger(record, prep.snapshot.prices)
        admission.settle(record, prep.snapshot.prices)

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
        self, prep: Prepared, failover: bool, chain: ChainState, admission: governance.Admission | None = None
    ) -> Iterator[tuple[BaseProvider, AIRequest, int]]:
        """The candidates to try, in order, each with its recent failure count: those the site's policy
        refuses (never a provider failure) and those cooling down are skipped and noted in `chain`.
        Before a candidate is yielded, the call's spend reservation is raised to that candidate's worst
        case (hard caps: a dearer fallback never runs on a cheaper provider's reservation); one the caps
        cannot hold is skipped and noted too. Both drivers, plain calls and streams walk the chain here."""
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
            if admission is not None and (
                uncovered := governance.cover_candidate(admission, prep.snapshot, candidate, request)
            ):
                logger.info("%s skipped: %s", candidate.name, type(uncovered).__name__)
                chain.refused.append(uncovered)
                continue
            yield candidate, request, failures

    def _run_chain(self, prep: Prepared, failover: bool, admission: governance.Admission) -> GenerationResult:
        chain = ChainState()
        for candidate, request, failures in self._usable(prep, failover, chain, admission):
            try:
                result = candidate.execute(request)
            except FAILOVER_ERRORS as exc:
                self._failed(chain, candidate, exc)
                continue
            pauses.record_success(self.site_id, candidate.name, failures)
            return result
        raise self._chain_exhausted(prep, chain)

    async def _arun_chain(
        self, prep: Prepared, failover: bool, admission: governance.Admission, walk: _Walk | None = None
    ) -> GenerationResult:
        """`_run_chain` with the candidate's request awaited; the chain's decisions are the same functions.
        `walk`: the chain already walked to its first candidate (`_open_walked`), else walked from the start."""
        walk = walk or _Walk.start(self, prep, failover, admission)
        chain = walk.chain
        async for candidate, request, failures in walk.aremaining():
            try:
                result = await candidate.aexecute(request)
            except FAILOVER_ERRORS as exc:
                await offload(self._failed, chain, candidate, exc)
                continue
            if failures:  # a count to reset (a cache write): nothing to do, and no hop off the loop, without
                await offload(pauses.record_success, self.site_id, candidate.name, failures)
            return result
        raise await offload(self._chain_exhausted, prep, chain)

    def _failed(self, chain: ChainState, candidate: BaseProvider, exc: AIProviderError) -> None:
        """A candidate failed after its retries: count it towards its cooldown; the next one is tried."""
        chain.last_error = exc
        if exc.retryable and pauses.record_failure(self.site_id, candidate.name):
            logger.warning("%s cools down for site %s after repeated failures", candidate.name, self.site_id)
        logger.warning("%s failed (%s); trying the next provider", candidate.name, type(exc).__name__)

    def _chain_exhausted(self, prep: Prepared, chain: ChainState) -> AIProviderError:
        # A candidate the caps could not hold: the site is at its cap (or busy), whatever failed before it.
        spend = next((r for r in chain.refused if isinstance(r, BudgetExceeded)), None)
        if spend is not None:
            return governance.refuse(self.site_id, self.service, prep.requested, prep.primary.name, spend)
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
        *,
        failover: bool = True,
        **kwargs: Any,
    ) -> GatewayStream:
        """Yield text deltas as they arrive (iterate it); `.result` has the totals, and the usage rows are
        written, when the stream ends.

        A provider that fails before the first delta reached the caller is retried and failed over
        like a plain call (`failover=False`: only the chosen provider, as `complete`); after a delta,
        the caller gets the typed error and the ledger keeps the partial usage.
        """
        return self.stream_messages(
            self.messages_for(prompt),
            provider,
            model,
            max_tokens,
            temperature,
            system_prompt,
            failover=failover,
            **kwargs,
        )

    def stream_messages(
        self,
        messages: list[dict[str, str]],
        provider: str | None = None,
        model: str | None = None,
        max_tokens: int = 1000,
        temperature: float = 0.7,
        system_prompt: str | None = None,
        *,
        failover: bool = True,
        **kwargs: Any,
    ) -> GatewayStream:
        """`generate_stream` over a whole conversation (`[{role, content}, ...]`, as `complete` takes)."""
        prep = self.prepare(messages, provider, model, max_tokens, temperature, system_prompt, **kwargs)
        prep = self.guarded(prep)
        if (refusal := governance.candidate_refusal(prep.snapshot, prep.primary, model)) is not None:
            raise governance.refuse(self.site_id, self.service, prep.requested, prep.primary.name, refusal)
        if prep.request.response_schema is not None:
            raise InvalidRequest(
                "response_schema is for generate_content/generate_json: a stream cannot be "
                "validated before it reaches you."
            )
        capabilities.require(prep.primary, prep.request, prep.resolved, streaming=True)
        return GatewayStream(self, prep, self._admit(prep), failover=failover)

    # -- the async driver's entry points ---------------------------------------------------------------
    async def agenerate_content(
        self,
        prompt: str,
        provider: str | None = None,
        model: str | None = None,
        max_tokens: int = 1000,
        temperature: float = 0.7,
        system_prompt: str | None = None,
        **kwargs: Any,
    ) -> GenerationResult:
        """`generate_content` on an event loop (the SDKs' async clients); the same pipeline and rules."""
        return await self.acomplete(
            self.messages_for(prompt),
            provider=provider,
            model=model,
            max_tokens=max_tokens,
            temperature=temperature,
            system_prompt=system_prompt,
            **kwargs,
        )

    async def acomplete(
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
        """`complete` on an event loop, `response_schema` (validated JSON, one corrective retry) included."""
        if kwargs.get("response_schema") is not None:
            from integrations.ai.gateway.structured import acomplete_json

            return await acomplete_json(
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
        call = (messages, provider, model, max_tokens, temperature, system_prompt)
        opened = await offload(self.open_call, *call, cache=cache, failover=failover, **kwargs)
        return await self.aexecute_opened(opened)

    def open_call(
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
        **options: Any,
    ) -> OpenedCall:
        """`prepare`, then the call opened (guardrails, response cache, limits, budget, the chain walked to its
        first usable candidate) on one thread: what an async caller runs in its one hop off the event loop
        before `aexecute_opened`. A refusal is recorded and raised here; once this returns, the call holds
        its reservation until `aexecute_opened` settles it."""
        prep = self.prepare(messages, provider, model, max_tokens, temperature, system_prompt, **options)
        return OpenedCall(self._open_walked(prep, cache, failover), failover)

    async def astream(
        self,
        prompt: str | list[dict[str, str]],
        provider: str | None = None,
        model: str | None = None,
        max_tokens: int = 1000,
        temperature: float = 0.7,
        system_prompt: str | None = None,
        **kwargs: Any,
    ) -> GatewayStream:
        """`generate_stream` (a prompt) or `stream_messages` (a conversation) for an event loop: admitted off
        the loop, then `async for` it. Everything that can refuse the call raises here, before any delta."""
        messages = self.messages_for(prompt) if isinstance(prompt, str) else prompt
        return await offload(
            self.primed_stream, messages, provider, model, max_tokens, temperature, system_prompt, **kwargs
        )

    def primed_stream(self, messages: list[dict[str, Any]], *args: Any, **kwargs: Any) -> GatewayStream:
        """`stream_messages`, its chain walked to the first candidate (`GatewayStream.prime`): what an async
        caller runs in its one hop off the event loop before iterating the stream there."""
        stream = self.stream_messages(messages, *args, **kwargs)
        stream.prime()
        return stream

    # -- beyond text: structured output and embeddings (the same pipeline; see structured.py, embeddings.py) --
    def generate_json(self, prompt: str, schema: dict[str, Any], **kwargs: Any) -> Any:
        """JSON that validates against `schema` (a JSON schema of an object), parsed; `InvalidOutput` when
        the model's answer does not match it after one corrective retry."""
        return self.generate_content(prompt, response_schema=schema, **kwargs).parsed

    async def agenerate_json(self, prompt: str, schema: dict[str, Any], **kwargs: Any) -> Any:
        """`generate_json` on an event loop."""
        return (await self.agenerate_content(prompt, response_schema=schema, **kwargs)).parsed

    async def aembed(
        self, texts: list[str], model: str | None = None, provider: str | None = None, dimensions: int | None = None
    ) -> Any:
        """`embed` for an event loop: the same pipeline run off the loop (`offload`: the request's thread under
        ASGI), upstream request included: embeddings do not stream, so an async client would only save a
        thread while the vendor answers."""
        return await offload(self.embed, texts, model=model, provider=provider, dimensions=dimensions)

    def embed(
        self, texts: list[str], model: str | None = None, provider: str | None = None, dimensions: int | None = None
    ) -> Any:
        """One vector per text, in order (`EmbeddingResult`), batched to the vendor's limits, cached per
        site by (model, dimensions, text), priced and ledgered like any call. `dimensions`: shortened vectors,
        for the models that can make them (OpenAI's text-embedding-3 family); None: the model's own length."""
        from integrations.ai.gateway.embeddings import embed

        return embed(self, texts, model=model, provider=provider, dimensions=dimensions)

    def count_tokens(
        self,
        messages: list[dict[str, Any]],
        model: str | None = None,
        provider: str | None = None,
        system_prompt: str | None = None,
        **options: Any,
    ) -> int:
        """The input tokens a call of `messages` would be billed for, as the serving vendor counts them (free: no
        budget or rate-limit ticket, one `free` ledger row; `gateway/counting.py`); NotSupported where the vendor
        cannot count."""
        from integrations.ai.gateway.counting import count_tokens

        return count_tokens(self, messages, model, provider, system_prompt, **options)

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
            reservation = self._reserve(list(preps.values()), run_options.get("failover", True))
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
                schema = preps[item.index].request.response_schema if item.result is not None else None
                if schema is not None and item.result is not None:  # structured: valid JSON or the item's error
                    item.result.parsed, errors = problems(item.result.content, dict(schema))
                    if errors:  # one call per item (no corrective retry in a batch): nothing invalid returned
                        item.error = InvalidOutput(
                            f"The model's answer did not match the schema: {'; '.join(errors)}.",
                            errors=errors,
                            provider=item.result.provider,
                        )
                        item.result = None
            if on_item is not None:
                on_item(item)
            return item

        try:
            if concurrency == 1 or len(items) <= 1:
                return [run(item) for item in items]
            with ThreadPoolExecutor(max_workers=min(concurrency, len(items)), thread_name_prefix="ai-batch") as pool:
                return list(pool.map(run, items))
        finally:
            # to the ledger writer, off this thread
            spent = usage.submit_deferred(rows, budget_settled=reservation is not None and reservation.settles_in_db)
            if reservation is not None:
                reservation.settle_cost(spent)


_UNWALKED: Any = object()  # a `_Walk` whose first candidate is still to be looked for


@dataclass
class _Walk:
    """A call's walk along the failover chain (`AIService._usable`): its state, the candidates left, and the
    first one if `GatewayStream.prime` looked for it already (None: none usable; an exception: the walk
    failed)."""

    chain: ChainState
    candidates: Iterator[tuple[BaseProvider, AIRequest, int]]
    first: Any

    @classmethod
    def start(cls, service: AIService, prep: Prepared, failover: bool, admission: governance.Admission | None) -> _Walk:
        """A walk not started yet."""
        chain = ChainState()
        return cls(chain, service._usable(prep, failover, chain, admission), _UNWALKED)

    @classmethod
    def primed(
        cls, service: AIService, prep: Prepared, failover: bool, admission: governance.Admission | None
    ) -> _Walk:
        """A walk taken to its first usable candidate now, on this thread; a failure of the walk is kept and
        raised at its first step (`remaining`/`aremaining`), where the caller settles the call."""
        walk = cls.start(service, prep, failover, admission)
        try:
            walk.first = next(walk.candidates, None)
        except Exception as exc:
            walk.first = exc
        return walk

    def _primed(self) -> bool:
        """True when `first` is a primed answer (it raises a kept failure)."""
        if self.first is _UNWALKED:
            return False
        if isinstance(self.first, Exception):
            raise self.first
        return True

    def remaining(self) -> Iterator[tuple[BaseProvider, AIRequest, int]]:
        if self._primed():
            if self.first is None:
                return
            yield self.first
        yield from self.candidates

    async def aremaining(self) -> AsyncIterator[tuple[BaseProvider, AIRequest, int]]:
        """`remaining`, each further candidate looked for off the event loop (cooldowns and reservations are
        read from the cache)."""
        if self._primed():
            if self.first is None:
                return
            yield self.first
        while (found := await offload(next, self.candidates, None)) is not None:
            yield found


class GatewayStream:
    """A stream through the chain: retried and failed over until the first delta; ledgered when done.

    Iterate it (`for`) on a thread, or `async for` it on an event loop: both drivers walk the same chain
    with the same decisions (`_retry_or_next`); only the upstream request and the waits differ. A caller
    that stops early (`close()`/`aclose()`, a cancelled task: a client that went away) closes the upstream
    request at once; the call is settled with what was streamed, its ledger row `cancelled`.
    """

    def __init__(
        self, service: AIService, prep: Prepared, admission: governance.Admission, *, failover: bool = True
    ) -> None:
        self.service = service
        self.failover = failover  # False: only the chosen provider, never the site's fallback chain
        self.prep = prep
        self.admission = admission
        self.stream: StreamingResult | None = None
        self.record: usage.CallRecord | None = None
        self._walk: _Walk | None = None  # the chain walked to its first candidate by `prime`

    def prime(self) -> None:
        """Walk the failover chain to its first usable candidate now, on this thread: the async driver calls
        it in the same hop off its event loop that admitted the stream, so the stream's first step does not
        leave the loop again for it. A failure of the walk is kept and raised where it would have been: at
        the stream's first step, which settles the call."""
        self._walk = _Walk.primed(self.service, self.prep, self.failover, self.admission)

    def _walk_from_start(self) -> _Walk:
        """The primed walk (once), else a new one not yet started."""
        walk, self._walk = self._walk, None
        return walk if walk is not None else _Walk.start(self.service, self.prep, self.failover, self.admission)

    @property
    def result(self) -> GenerationResult | None:
        return self.stream.result if self.stream is not None else None

    @property
    def cancelled(self) -> bool:
        return self.stream is not None and self.stream.cancelled

    @observed.traced_stream
    def __iter__(self) -> Iterator[str]:
        service, prep = self.service, self.prep
        record = self.record = usage.CallRecord(service.site_id, service.service, prep.requested, request=prep.request)
        record.guardrails = list(prep.guardrails)
        try:
            with usage.recording(record):
                self._take_slot(record)
            pieces = self._through_chain()
            try:
                while True:
                    with usage.recording(record):  # each step, in whichever context resumes the stream
                        piece = next(pieces, None)
                    if piece is None:
                        if self.stream is not None and self.stream.result is not None:
                            # the text has reached the caller: a flagged answer ends the stream with the typed error
                            service.guard_answer(prep, record, self.stream.result)
                        return
                    yield piece
            finally:
                with usage.recording(record):
                    pieces.close()  # closed early: the upstream request is closed before settling
                stream_slots.release()
        finally:
            AIService._settle(prep, self.admission, record)

    def __aiter__(self) -> AsyncIterator[str]:
        return self._aiterate()

    @observed.atraced_stream
    async def _aiterate(self) -> AsyncIterator[str]:
        service, prep = self.service, self.prep
        record = self.record = usage.CallRecord(service.site_id, service.service, prep.requested, request=prep.request)
        record.guardrails = list(prep.guardrails)
        try:
            with usage.recording(record):
                self._take_slot(record)
            pieces = self._athrough_chain()
            try:
                while True:
                    with usage.recording(record):
                        piece = await anext(pieces, None)
                    if piece is None:
                        moderated = prep.snapshot.guardrails.moderate_output
                        if moderated and self.stream is not None and self.stream.result is not None:
                            await offload(service.guard_answer, prep, record, self.stream.result)
                        return
                    yield piece
            finally:
                with usage.recording(record):
                    await pieces.aclose()  # closed early: the upstream request is closed before settling
                stream_slots.release()
        finally:
            # shielded: a second cancellation must not leave the reservation held
            await asyncio.shield(offload(AIService._settle, prep, self.admission, record))

    def _take_slot(self, record: usage.CallRecord) -> None:
        """One of the process's stream slots (`AI_MAX_STREAMS`); past the cap, a `refused` row and `Overloaded`
        (the reservation is released as the stream settles)."""
        try:
            stream_slots.acquire()
        except Overloaded as exc:
            record.refusal = (self.prep.primary.name, exc)
            raise

    def _price_broken(self) -> None:
        """A stream that broke (or was cancelled) after it started never got the vendor's usage (nor
        OpenRouter's cost): its tokens are estimated (prompt ~4 characters each, the streamed text's), priced
        at the site's price resolution (`pricing`) and recorded as `estimated`; an unpriced model is charged
        its worst case (`unpriced`). Such a stream is never free, and its row says its cost is an estimate."""
        record = self.record
        attempt = record.attempts[-1] if record is not None and record.attempts else None
        partial = attempt.result if attempt is not None else None
        if record is None or partial is None or partial.cost is not None:
            return
        if not partial.prompt_tokens:
            partial.prompt_tokens = max(1, record.size[0] // 4)
            partial.total_tokens = partial.prompt_tokens + partial.completion_tokens
        cost, source = usage.cost_of(self.prep.snapshot.prices, partial, record.size)
        partial.cost, partial.cost_source = cost, ("unpriced" if source == "unpriced" else "estimated")

    def _retry_or_next(
        self, candidate: BaseProvider, chain: ChainState, exc: AIProviderError, attempt: int
    ) -> float | None:
        """A candidate's stream failed (both drivers): seconds to wait before retrying it, None to go on to
        the next candidate; `exc` raised when the caller must get it (half an answer went out, or a failure
        another provider would not fix)."""
        assert self.stream is not None
        if self.stream.delivered:  # half an answer went out: it cannot be replayed
            self._price_broken()
            raise exc
        delay = candidate._retry_delay(exc, attempt)
        if delay is not None:
            return delay
        if not isinstance(exc, FAILOVER_ERRORS):
            raise exc
        self.service._failed(chain, candidate, exc)
        return None

    def _through_chain(self) -> Generator[str, None, None]:
        service = self.service
        walk = self._walk_from_start()
        chain = walk.chain
        for candidate, request, failures in walk.remaining():
            attempt = 0
            while True:
                attempt += 1
                self.stream = candidate.stream(request, attempt=attempt)
                try:
                    yield from self.stream
                except AIProviderError as exc:
                    delay = self._retry_or_next(candidate, chain, exc, attempt)
                    if delay is None:
                        break
                    candidate.hooks.sleep(delay)
                    continue
                except GeneratorExit:
                    self._price_broken()
                    raise
                pauses.record_success(service.site_id, candidate.name, failures)
                return
        raise service._chain_exhausted(self.prep, chain)

    async def _athrough_chain(self) -> AsyncGenerator[str, None]:
        service = self.service
        walk = self._walk_from_start()
        chain = walk.chain
        async for candidate, request, failures in walk.aremaining():
            attempt = 0
            while True:
                attempt += 1
                stream = self.stream = candidate.astream(request, attempt=attempt)
                pieces = aiter(stream)
                try:
                    async for piece in pieces:
                        yield piece
                except AIProviderError as exc:
                    delay = await offload(self._retry_or_next, candidate, chain, exc, attempt)
                    if delay is None:
                        break
                    await candidate.hooks.asleep(delay)
                    continue
                except (GeneratorExit, asyncio.CancelledError):
                    await pieces.aclose()  # type: ignore[attr-defined]  # the upstream request, closed now
                    self._price_broken()
                    raise
                if failures:  # a count to reset (a cache write): nothing to do, and no hop off the loop, without
                    await offload(pauses.record_success, service.site_id, candidate.name, failures)
                return
        raise await offload(service._chain_exhausted, self.prep, chain)
