"""Batch generation (issue 6) and the `ai_test` command (issue 2)."""

from __future__ import annotations

import threading
import time
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from integrations.ai.gateway.service import AIService
from integrations.ai.ledger import usage
from integrations.ai.providers import errors
from integrations.ai.runtime import clock
from integrations.models import AIUsage

from .factories import AIProviderSettingsFactory, SiteFactory

OAI_KEY = "sk-proj-" + "6a" * 24
OR_KEY = "sk-or-v1-" + "6b" * 24

pytestmark = pytest.mark.django_db


@pytest.fixture
def record(upstream):
    return AIProviderSettingsFactory(
        provider_type="openai", openai_api_key=OAI_KEY, openai_base_url=upstream.openai_base_url
    )


def test_batch_preserves_order_and_captures_each_error(record, upstream):
    upstream.script(flavor="openai", delay=0.2)  # the first prompt finishes last
    upstream.script(flavor="openai", status=400, times=1)
    prompts = [f"Prompt number {i}" for i in range(12)]
    items = AIService(site=record.site, service="pages.batch").generate_batch(prompts, concurrency=4, max_tokens=30)
    assert [item.index for item in items] == list(range(12))
    assert [item.prompt for item in items] == prompts
    failed = [item for item in items if not item.ok]
    assert len(failed) == 1 and isinstance(failed[0].error, errors.InvalidRequest)
    for item in items:
        if item.ok:
            assert item.result.content.endswith(item.prompt)
    usage.flush()
    rows = AIUsage.objects.filter(site=record.site)
    assert rows.count() == 12 and rows.filter(status="error").count() == 1
    assert set(rows.values_list("service", flat=True)) == {"pages.batch"}


def test_batch_runs_concurrently(record, upstream):
    service = AIService(site=record.site)
    service.generate_content("warm up")  # SDK import and client build are not what this measures
    upstream.script(flavor="openai", delay=0.2, times=8)
    started = time.monotonic()
    items = service.generate_batch([f"p{i}" for i in range(8)], concurrency=8)
    assert all(item.ok for item in items)
    assert time.monotonic() - started < 0.2 * 8 / 2  # well under the sequential 1.6 s


def test_a_rate_limit_pauses_the_whole_batch(record, upstream, settings):
    settings.AI_MAX_RETRIES = 1
    upstream.script(flavor="openai", status=429, headers={"Retry-After": "1"})
    thread_of: dict[str, str] = {}  # each prompt -> the worker thread that ran it (on_item runs on that thread)
    with clock.use(clock.FakeClock()) as fake:
        items = AIService(site=record.site).generate_batch(
            [f"p{i}" for i in range(6)],
            concurrency=2,
            on_item=lambda item: thread_of.__setitem__(item.prompt, threading.current_thread().name),
        )
    assert all(item.ok for item in items)
    requests = sorted(upstream.requests, key=lambda r: r.received_at)
    assert len(requests) == 7  # six prompts plus one retry
    # The order of events, not the wall clock: both workers waited out the second the upstream asked
    # for (the told one as its retry delay, the other through the shared pause) ...
    waited: dict[str, float] = {}
    for thread, seconds, _ in fake.events:
        waited[thread] = waited.get(thread, 0.0) + seconds
    assert len(waited) == 2 and all(total >= 0.95 for total in waited.values()), fake.events
    # ... and between the pause being set (the told worker's first wait comes right after it) and the
    # other worker's wait, at most that worker's one request already on its way reached the upstream.
    # Only the other worker's requests count: the told worker, once it has waited, goes on with its next
    # prompts, and those may reach the upstream before the other worker's wait without slipping anything.
    prompts = [r.json["messages"][-1]["content"] for r in requests]
    (told,) = {p for p in prompts if prompts.count(p) == 2}  # the prompt the 429 answered, sent again
    other = next(thread for thread in waited if thread != thread_of[told])
    pause_set = min(at for _, _, at in fake.events)
    other_waited = min(at for thread, _, at in fake.events if thread == other)
    slipped = [
        r
        for r in requests
        if thread_of[r.json["messages"][-1]["content"]] == other and pause_set < r.received_at < other_waited
    ]
    assert len(slipped) <= 1, (slipped, fake.events)


def test_batch_refuses_bad_concurrency(record):
    with pytest.raises(errors.InvalidRequest, match="concurrency"):
        AIService(site=record.site).generate_batch(["x"], concurrency=0)


def test_ai_test_command_prints_answer_and_numbers(ai_settings, upstream):
    ai_settings.OPENROUTER_API_KEY = OR_KEY
    out = StringIO()
    call_command("ai_test", "Say hello to Panel", "--model", "claude-3-5-sonnet", stdout=out)
    text = out.getvalue()
    assert "Emulated openrouter reply (anthropic/claude-3.5-sonnet): Say hello to Panel" in text
    assert "provider:  openrouter (via Anthropic)" in text
    assert "model:     anthropic/claude-3.5-sonnet (requested claude-3-5-sonnet)" in text
    assert "tokens:    4 prompt + 8 completion = 12" in text
    assert "cost:      $0.000132" in text  # 4 x $3/M + 8 x $15/M, as OpenRouter reported it
    assert OR_KEY not in text


def test_ai_test_command_uses_a_sites_settings(record, upstream):
    out = StringIO()
    call_command("ai_test", "Hello", "--site", record.site.domain, stdout=out)
    assert "provider:  openai" in out.getvalue()
    assert upstream.requests[0].headers["authorization"] == f"Bearer {OAI_KEY}"


def test_ai_test_command_reports_typed_errors(ai_settings):
    with pytest.raises(CommandError, match="provider_not_configured: No AI provider is configured"):
        call_command("ai_test", "Hello")
    SiteFactory(domain="known.example")
    with pytest.raises(CommandError, match=r"No site with domain 'unknown\.example'"):
        call_command("ai_test", "Hello", "--site", "unknown.example")
