"""`AIService.count_tokens`: the input tokens a call would be billed for, counted by the vendor that would serve it.

Clients that manage a context window ask before they send (Anthropic's `count_tokens`, which Claude Code
calls at start and as a conversation grows). The count is of the call as the gateway would make it: the
site's provider and mappings (routing), the site's model policy and the calling key's allowed models (a
refused model is refused here too, and ledgered as a refusal, as a call is), the site's PII masking (what is
counted is what would be sent). Only a vendor with a counting endpoint can count (Anthropic, free); another
raises NotSupported before any request: an estimate would be a guess presented as a count.

Each count is one upstream request made with the site's key, so it is one usage row (service, model, the
key, latency; `free`, no tokens billed; a vendor's error is an error row). A count generates and bills
nothing, so it reserves no budget and takes no rate-limit ticket: a client may ask dozens of times a minute,
and each would otherwise take a generation's place in the site's requests per minute.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from integrations.ai.governance import admission as governance
from integrations.ai.ledger import usage
from integrations.ai.providers.errors import AIProviderError, NotSupported
from integrations.ai.providers.types import Attempt, GenerationResult

if TYPE_CHECKING:
    from integrations.ai.gateway.service import AIService


def count_tokens(
    service: AIService,
    messages: list[dict[str, Any]],
    model: str | None = None,
    provider: str | None = None,
    system_prompt: str | None = None,
    **options: Any,
) -> int:
    """The input tokens of `messages` (with the system prompt and any tools in `options`) on the provider that
    would serve `model`, as that vendor counts them."""
    thinking = options.get("thinking")  # a count generates nothing: max_tokens only has to admit a thinking budget
    budget = thinking.get("budget_tokens") if isinstance(thinking, dict) else None
    room = budget + 1 if type(budget) is int else 1
    prep = service.guarded(service.prepare(messages, provider, model, room, 1.0, system_prompt, **options))
    if (refusal := governance.candidate_refusal(prep.snapshot, prep.primary, model)) is not None:
        raise governance.refuse(service.site_id, service.service, prep.requested, prep.primary.name, refusal)
    vendor = prep.primary
    record = usage.CallRecord(
        service.site_id, service.service, prep.requested, request=prep.request, guardrails=list(prep.guardrails)
    )
    started = time.monotonic()
    try:
        tokens = vendor.count_tokens(prep.request)
    except NotSupported:
        raise  # a vendor that cannot count: refused before any request, so nothing to ledger
    except AIProviderError as exc:
        record.attempts.append(Attempt(vendor.name, prep.resolved, 1, _ms(started), error=exc))
        usage.write_ledger(record, prep.snapshot.prices)
        raise
    counted = GenerationResult(
        content="", model=prep.resolved, provider=vendor.name, cost=Decimal(0), cost_source="free"
    )
    record.attempts.append(Attempt(vendor.name, prep.resolved, 1, _ms(started), result=counted))
    usage.write_ledger(record, prep.snapshot.prices)
    return tokens


def _ms(started: float) -> float:
    return (time.monotonic() - started) * 1000
