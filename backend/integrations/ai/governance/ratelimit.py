"""Per-site rate limits (requests and tokens per minute), shared by every process through the cache.

Fixed one-minute windows: each admitted call adds 1 to the site's request counter and its token
estimate (prompt characters / 3 + max_tokens) to the token counter with atomic `add`/`incr`, so
with Redis as the cache two processes can never both slip past a limit. A call that would pass a
limit gives its increments back and fails with `RateLimited` whose `retry_after` is the time to the
next window. After the call the token counter is settled to the tokens really used.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

from integrations.ai.providers.errors import InvalidRequest, RateLimited

WINDOW = 60  # seconds
KEY_TTL = 2 * WINDOW


def _window(now: float | None = None) -> tuple[int, float]:
    """(index of the current window, seconds until it ends)."""
    now = time.time() if now is None else now
    index = int(now // WINDOW)
    return index, (index + 1) * WINDOW - now


def _keys(site_id: int | str, index: int) -> tuple[str, str]:
    base = f"ai:rate:{site_id}:{index}"
    return f"{base}:requests", f"{base}:tokens"


def _take(key: str, amount: int) -> int:
    from integrations.ai.runtime.shared_cache import cache

    cache.add(key, 0, KEY_TTL)
    try:
        return cache.incr(key, amount)
    except ValueError:  # evicted between add and incr
        cache.add(key, amount, KEY_TTL)
        return amount


def _give_back(key: str, amount: int) -> None:
    from integrations.ai.runtime.shared_cache import cache

    with contextlib.suppress(ValueError):
        cache.decr(key, amount)


@dataclass
class Ticket:
    """What one admitted call took from its window; `settle` corrects the token estimate."""

    token_key: str | None
    estimated: int

    def settle(self, used_tokens: int) -> None:
        if self.token_key is None or used_tokens == self.estimated:
            return
        from integrations.ai.runtime.shared_cache import cache

        with contextlib.suppress(ValueError):  # the window ended and its counter expired: nothing to correct
            cache.incr(self.token_key, used_tokens - self.estimated)


def admit(
    site_id: int | str | None,
    requests_per_minute: int | None,
    tokens_per_minute: int | None,
    estimated_tokens: int,
    owner: str = "site",
) -> Ticket | None:
    """Count one call of `estimated_tokens` against the limits of `site_id` (or of another scope, such as a
    virtual key's `callers.KeyScope.rate_scope`, which `owner` names in messages), or raise RateLimited."""
    if site_id is None or (not requests_per_minute and not tokens_per_minute):
        return None
    if tokens_per_minute and estimated_tokens > tokens_per_minute:
        raise InvalidRequest(
            f"This request may use up to {estimated_tokens} tokens, more than the {owner}'s limit of "
            f"{tokens_per_minute} tokens per minute: lower max_tokens or shorten the prompt."
        )
    index, remaining = _window()
    request_key, token_key = _keys(site_id, index)
    retry_after = max(1.0, round(remaining, 1))
    if requests_per_minute and _take(request_key, 1) > requests_per_minute:
        _give_back(request_key, 1)
        raise RateLimited(
            f"This {owner} has made its {requests_per_minute} AI requests for this minute "
            f"(its requests-per-minute limit); retry in {retry_after:.0f} s.",
            retry_after=retry_after,
        )
    if not tokens_per_minute:
        return Ticket(token_key=None, estimated=estimated_tokens)
    if _take(token_key, estimated_tokens) > tokens_per_minute:
        _give_back(token_key, estimated_tokens)
        if requests_per_minute:
            _give_back(request_key, 1)
        raise RateLimited(
            f"This request would pass the {owner}'s limit of {tokens_per_minute} tokens per minute; "
            f"retry in {retry_after:.0f} s or lower max_tokens.",
            retry_after=retry_after,
        )
    return Ticket(token_key=token_key, estimated=estimated_tokens)


def estimate_tokens(messages: list[dict[str, str]], system_prompt: str | None, max_tokens: int) -> int:
    """The most tokens a call can use: ~1 token per 3 characters of input, plus every allowed output token."""
    chars = sum(len(m.get("content") or "") for m in messages) + len(system_prompt or "")
    return chars // 3 + 16 + int(max_tokens)
