"""Issue 25, "Ledger and money": spend caps are hard, in-flight refusals are retryable, results carry their cost.

The guarantee tested here (`governance/budget.py`): a site's spend stays <= its cap, plus the overshoots
(actual - reserved) of the calls in flight when the last call was admitted. Costs computed from the
price resolution never overshoot (each candidate of the failover chain is reserved at its own worst case
before it runs), so those tests assert spend <= cap exactly. A vendor-reported cost above the estimate
overshoots only until it settles: it moves the counters by all of it, and its cost/estimate ratio scales
that model's later reservations, so calls admitted after it reserve what the vendor really charges.

Concurrency without threads or timing: a stream reserves when it is made and holds its reservation
until it is consumed, so several streams made (or started with `next`) before any is finished are
calls in flight at once. Every test runs on the in-process cache (SQLite pass) and on Redis (the
PostgreSQL + Redis pass: REDIS_URL makes Redis the cache that holds the budget counters).
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from integrations.ai.gateway.service import AIService
from integrations.ai.ledger import usage
from integrations.ai.providers import errors
from integrations.ai.runtime.shared_cache import cache
from integrations.models import AIUsage, ModelPrice

pytestmark = pytest.mark.django_db
PROMPT = "Describe our spring sale in one line"
CHEAP = ("openai", "gpt-4o-mini", "0.15", "0.6")  # USD per million prompt / completion tokens
DEAR = ("anthropic", "claude-3-opus-20240229", "15", "75")
GPT4O = ("openai", "gpt-4o", "2.5", "10")


def price(provider: str, model: str, prompt: str, completion: str) -> None:
    ModelPrice.objects.create(
        provider=provider,
        model_id=model,
        prompt_per_million=Decimal(prompt),
        completion_per_million=Decimal(completion),
    )


def rows(site) -> list[AIUsage]:
    usage.flush()
    return list(AIUsage.objects.filter(site=site).order_by("id"))


def spend(site) -> Decimal:
    return sum((r.cost or Decimal(0) for r in rows(site)), Decimal(0))


@pytest.fixture
def failing_over(emulated_site, upstream, settings):
    """A site whose cheap primary (OpenAI) answers 500 to everything and whose fallback (Anthropic) is dear."""
    settings.AI_MAX_RETRIES = 0
    price(*CHEAP)
    price(*DEAR)

    def make(cap: str):
        site = emulated_site(
            "openai",
            also=("anthropic",),
            monthly_budget=Decimal(cap),
            fallback_chain=[{"provider": "anthropic", "model": DEAR[1]}],
        )
        upstream.script(flavor="openai", status=500, times=10_000)
        return site

    return make


def test_failover_to_a_dearer_provider_never_passes_the_cap(failing_over, upstream):
    """Reserved at the cheap primary's price only, 40 calls that all fail over to the dear fallback spent
    past the cap. Each fallback now runs only once the cap holds its own worst case."""
    cap = Decimal("0.02")
    site = failing_over(str(cap))
    served = refused = 0
    for _ in range(40):
        try:
            result = AIService(site=site).generate_content(PROMPT, model="gpt-4o-mini", max_tokens=100)
        except errors.BudgetExceeded:
            refused += 1
        else:
            assert result.provider == "anthropic"
            served += 1
    assert served > 0 and refused > 0
    assert spend(site) <= cap
    assert len(upstream.requests_for("anthropic")) == served  # no fallback request the cap could not hold
    refusals = [r for r in rows(site) if r.status == "refused"]
    assert len(refusals) == refused and all(r.error_class == "BudgetExceeded" for r in refusals)


def test_failover_of_calls_in_flight_at_once_never_passes_the_cap(failing_over, upstream):
    """Twelve streams admitted at the cheap price, each started (failed over, reserved, answering) before any
    finishes: only as many reach the dear fallback as the cap holds at its worst case."""
    cap = Decimal("0.03")
    site = failing_over(str(cap))
    service = AIService(site=site)
    streams = [service.generate_stream(PROMPT, model="gpt-4o-mini", max_tokens=100) for _ in range(12)]
    started, refused = [], []
    for stream in streams:
        deltas = iter(stream)
        try:
            started.append((deltas, next(deltas)))
        except errors.BudgetExceeded as exc:
            refused.append(exc)
    for deltas, _first in started:
        list(deltas)
    # each holds ~$0.0076 (100 tokens at $75/M, and its prompt): three fit in $0.03, the fourth does not
    assert len(started) == 3 and len(refused) == 9
    assert all(isinstance(exc, errors.BudgetBusy) for exc in refused)  # settled spend left room: retryable
    assert spend(site) <= cap
    assert len(upstream.requests_for("anthropic")) == 3


def test_a_batch_reserves_the_dearest_candidate_of_its_chain(failing_over, upstream):
    """A batch reserves once for all its prompts (its workers cannot re-reserve): at the fallback's price."""
    site = failing_over("0.01")
    with pytest.raises(errors.BudgetExceeded, match="could cost up to"):
        AIService(site=site).generate_batch([PROMPT] * 3, model="gpt-4o-mini", max_tokens=100)
    assert upstream.requests == []  # 3 x ~$0.0076 at the fallback does not fit $0.01; at the primary it would


def test_openrouter_reporting_more_than_the_estimate_stops_the_site_at_its_cap(emulated_site, upstream):
    """OpenRouter's own `usage.cost` (here $0.004 a call, against a catalogue estimate of ~$0.00003) is what the
    ledger records and what the settlement moves the counters by, and the ratio scales the model's next worst
    cases: the second call reserves ~$0.004, the third no longer fits. Spend <= cap here; in general <= cap +
    the overshoot of calls admitted before any overshoot of their model was seen."""
    cap = Decimal("0.01")
    site = emulated_site("openrouter", monthly_budget=cap)
    upstream.script(flavor="openrouter", usage={"cost": 0.004}, times=100)
    results = []
    with pytest.raises(errors.BudgetExceeded, match="could cost up to") as refused:
        for _ in range(20):
            results.append(AIService(site=site).generate_content(PROMPT, model="openai/gpt-4o-mini", max_tokens=50))
    assert type(refused.value) is errors.BudgetExceeded  # the settled spend leaves no room: not worth retrying
    assert len(results) == 2
    assert spend(site) == Decimal("0.008") <= cap
    assert all(r.cost == Decimal("0.004") and r.cost_source == "reported" for r in results)


@pytest.fixture
def gpt4o_site(emulated_site):
    """One call's worst case (100 tokens at $10/M, its prompt at $2.5/M) is ~$0.00107: a $0.0015 cap holds one."""
    price(*GPT4O)

    def make(**fields):
        return emulated_site("openai", **fields)

    return make


def held(site):
    """A call in flight: a stream holds its reservation from when it is made until it is consumed."""
    return AIService(site=site).generate_stream(PROMPT, model="gpt-4o", max_tokens=100)


def call(site):
    return AIService(site=site).generate_content(PROMPT, model="gpt-4o", max_tokens=100)


@pytest.mark.parametrize("cap", [{"monthly_budget": Decimal("0.0015")}, {"daily_budget": Decimal("0.0015")}])
def test_a_cap_full_of_calls_in_flight_refuses_with_a_retryable_error(gpt4o_site, upstream, cap):
    site = gpt4o_site(**cap)
    running = held(site)
    with pytest.raises(errors.BudgetBusy) as busy:
        call(site)
    assert busy.value.retryable and busy.value.retry_after and busy.value.code == "budget_busy"
    assert "in flight" in busy.value.message
    list(running)  # settles at its real cost (~$0.0003): the retry fits
    assert call(site).content
    assert len(upstream.requests) == 2
    refused = [r for r in rows(site) if r.status == "refused"]
    assert [r.error_class for r in refused] == ["BudgetBusy"]


def test_a_call_the_settled_spend_leaves_no_room_for_is_exceeded_not_busy(gpt4o_site, upstream):
    """With a call in flight too: $0.0015 settled + a ~$0.00207 worst case passes the $0.003 cap even if every
    call in flight settled at nothing, so retrying cannot help."""
    site = gpt4o_site(monthly_budget=Decimal("0.003"))
    AIUsage.objects.create(site=site, provider="openai", status="ok", cost=Decimal("0.0015"))
    running = held(site)
    with pytest.raises(errors.BudgetExceeded, match="could cost up to") as refused:
        AIService(site=site).generate_content(PROMPT, model="gpt-4o", max_tokens=200)
    assert type(refused.value) is errors.BudgetExceeded and not refused.value.retryable
    with pytest.raises(errors.BudgetBusy):  # a call that would fit once the running one settles
        call(site)
    list(running)
    assert upstream.requests and len(upstream.requests) == 1


@pytest.mark.parametrize("seen_by", ["this process", "another process"])
def test_after_an_overshoot_calls_in_flight_together_reserve_what_the_vendor_charges(emulated_site, upstream, seen_by):
    """One call reported at $0.004 against a ~$0.00003 estimate: the ratio scales that model's later worst cases,
    so ten streams made at once (all in flight before any settles) are admitted only as far as the cap holds
    them at the vendor's real price. Without it all ten ran at the tiny estimate: $0.044 against a $0.01 cap.
    A process reserves at the ratio it last saw, in the round trip that reads the shared one, and raises its
    reservation at once when the shared one is larger: when another process saw the overshoot (here: this
    process forgets what it saw), the result is the same."""
    from integrations.ai.governance import budget

    cap = Decimal("0.01")
    site = emulated_site("openrouter", monthly_budget=cap)
    upstream.script(flavor="openrouter", usage={"cost": 0.004}, times=100)
    service = AIService(site=site)
    service.generate_content(PROMPT, model="openai/gpt-4o-mini", max_tokens=50)
    admitted, busy = [], []
    for _ in range(10):
        if seen_by == "another process":
            budget.forget_ratios()  # each call raises its reservation (or gives it back: refused) in its admission
        try:
            admitted.append(service.generate_stream(PROMPT, model="openai/gpt-4o-mini", max_tokens=50))
        except errors.BudgetBusy as exc:
            busy.append(exc)
    for stream in admitted:
        list(stream)
    assert len(admitted) == 1 and len(busy) == 9  # $0.004 spent + one more at ~$0.004 fits; a third does not
    assert spend(site) == Decimal("0.008") <= cap
    used_key, spent_key = budget.counter_keys(site.id)
    assert cache.get(used_key) == cache.get(spent_key)  # nothing the refused ones reserved is still held
