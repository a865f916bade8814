"""`ModelListCache`: the cached model listings of OpenRouter and OpenAI-compatible endpoints.

`GET /v1/models` now asks every endpoint of a site for its listing, so a slow endpoint must hold up only its
own listing, and one that is down must not be asked again by every request meanwhile.
"""

from __future__ import annotations

import threading

import pytest

from integrations.ai.providers.base import ModelInfo
from integrations.ai.providers.errors import ProviderUnavailable
from integrations.ai.providers.openai_provider import ModelListCache

LISTED = [ModelInfo(id="llama3.1", name="llama3.1")]


def test_a_listing_is_fetched_once_while_fresh():
    calls = []
    cache = ModelListCache(ttl=60)
    for _ in range(3):
        assert cache.get("a", lambda: calls.append(1) or LISTED) == LISTED
    assert len(calls) == 1


def test_a_failure_is_raised_again_without_asking_until_it_expires():
    calls = []

    def down():
        calls.append(1)
        raise ProviderUnavailable("Could not reach the endpoint.", provider="ollama")

    remembered = ModelListCache(ttl=60, failure_ttl=60)
    for _ in range(3):
        with pytest.raises(ProviderUnavailable):
            remembered.get("a", down)
    assert len(calls) == 1
    expired = ModelListCache(ttl=60, failure_ttl=0)
    for _ in range(2):
        with pytest.raises(ProviderUnavailable):
            expired.get("a", down)
    assert len(calls) == 3
    assert expired.get("a", lambda: LISTED) == LISTED  # back up: listed again


def test_a_slow_listing_holds_up_only_its_own_key():
    release, started = threading.Event(), threading.Event()

    def slow():
        started.set()
        release.wait(60)
        return LISTED

    cache = ModelListCache()
    holder = threading.Thread(target=cache.get, args=("slow", slow))
    holder.start()
    try:
        assert started.wait(10)
        other = threading.Thread(target=cache.get, args=("fast", lambda: LISTED))
        other.start()
        other.join(5)
        assert not other.is_alive(), "another endpoint's listing waited for the slow one"
    finally:
        release.set()
        holder.join(10)
    assert cache.get("slow", lambda: []) == LISTED
