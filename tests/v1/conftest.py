"""The /v1 tests' sites (one per upstream, served by the emulator), their virtual keys, and SDK clients.

Panel runs as a real HTTP server (pytest-django's live_server) and the real `openai` and
`anthropic` SDKs are its clients, with retries off unless a test is about them.
"""

from __future__ import annotations

import anthropic
import openai
import pytest

from integrations.api.v1 import keys

from ..factories import UserFactory

MODEL_FOR = {"openai": "gpt-4o-mini", "anthropic": "claude-3-5-haiku", "openrouter": "gpt-4o-mini"}


@pytest.fixture
def owner(transactional_db):
    return UserFactory(username="key-owner")


@pytest.fixture
def make_key(owner):
    """`make_key(site, name="ci", monthly_budget=..., ...)` -> the raw key (the row is `keys.issue`'s)."""

    def make(site, name: str = "ci", **limits) -> str:
        return keys.issue(site, owner, name, **limits)[1]

    return make


@pytest.fixture
def base_url(live_server) -> str:
    return f"{live_server.url}/v1"


@pytest.fixture
def oai(base_url):
    def make(key: str, **options) -> openai.OpenAI:
        return openai.OpenAI(api_key=key, base_url=base_url, **{"max_retries": 0, **options})

    return make


@pytest.fixture
def ant(live_server):
    def make(key: str, **options) -> anthropic.Anthropic:
        return anthropic.Anthropic(api_key=key, base_url=live_server.url, **{"max_retries": 0, **options})

    return make
