"""Every vendor error status reaches callers as its typed error, with a message that names the fix."""

from __future__ import annotations

import time

import pytest

from integrations.ai.gateway.factory import ProviderFactory
from integrations.ai.providers import errors
from integrations.ai.runtime import clock

KEYS = {
    "openrouter": "sk-or-v1-" + "d4" * 24,
    "openai": "sk-proj-" + "e5" * 24,
    "anthropic": "sk-ant-api03-" + "f6" * 24,
}
MESSAGES = [{"role": "user", "content": "Summarise our return policy"}]

pytestmark = pytest.mark.django_db


@pytest.fixture
def keys(ai_settings):
    for provider, key in KEYS.items():
        setattr(ai_settings, f"{provider.upper()}_API_KEY", key)
    ai_settings.AI_MAX_RETRIES = 0
    return ai_settings


STATUS_ERRORS = [
    (400, errors.InvalidRequest),
    (401, errors.AuthenticationFailed),
    (402, errors.InsufficientCredits),
    (404, errors.ModelNotFound),
    (408, errors.ProviderTimeout),
    (429, errors.RateLimited),
    (500, errors.ProviderUnavailable),
    (502, errors.ProviderUnavailable),
    (503, errors.ProviderUnavailable),
    (529, errors.ProviderUnavailable),
]


@pytest.mark.parametrize("flavor", ["openrouter", "openai", "anthropic"])
@pytest.mark.parametrize(("status", "error_class"), STATUS_ERRORS)
def test_status_maps_to_typed_error(keys, upstream, flavor, status, error_class):
    upstream.script(flavor=flavor, status=status)
    with pytest.raises(error_class) as caught:
        ProviderFactory.create_provider(flavor).generate_content(MESSAGES)
    err = caught.value
    assert type(err) is error_class  # the most specific class, not just a parent
    assert err.status_code == status
    assert err.provider == flavor
    assert str(err).startswith(f"[{flavor}] ")
    assert KEYS[flavor] not in str(err) and KEYS[flavor] not in repr(err)
    assert len(upstream.requests) == 1  # AI_MAX_RETRIES=0 and the SDK's own retries are off


def test_openrouter_403_moderation_is_content_refused(keys, upstream):
    upstream.script(flavor="openrouter", status=403)
    with pytest.raises(errors.ContentRefused, match="flagged by moderation \\(violence\\)"):
        ProviderFactory.create_provider("openrouter").generate_content(MESSAGES)


@pytest.mark.parametrize("flavor", ["openai", "anthropic"])
def test_403_without_moderation_metadata_is_permission_denied(keys, upstream, flavor):
    upstream.script(flavor=flavor, status=403)
    with pytest.raises(errors.PermissionDenied):
        ProviderFactory.create_provider(flavor).generate_content(MESSAGES)


@pytest.mark.parametrize("flavor", ["openrouter", "openai", "anthropic"])
def test_rate_limit_carries_retry_after_seconds(keys, upstream, flavor):
    upstream.script(flavor=flavor, status=429, headers={"Retry-After": "7"})
    with pytest.raises(errors.RateLimited) as caught:
        ProviderFactory.create_provider(flavor).generate_content(MESSAGES)
    assert caught.value.retry_after == 7.0
    assert caught.value.retryable


def test_retry_after_ms_wins_over_retry_after(keys, upstream):
    upstream.script(flavor="openai", status=429, headers={"retry-after-ms": "1500", "Retry-After": "9"})
    with pytest.raises(errors.RateLimited) as caught:
        ProviderFactory.create_provider("openai").generate_content(MESSAGES)
    assert caught.value.retry_after == 1.5


def test_401_message_says_what_to_fix_and_hides_the_key(keys, upstream):
    keys.OPENAI_API_KEY = "sk-proj-invalid-" + "9" * 32
    with pytest.raises(errors.AuthenticationFailed) as caught:
        ProviderFactory.create_provider("openai").generate_content(MESSAGES)
    message = str(caught.value)
    assert "set a valid key" in message
    assert keys.OPENAI_API_KEY not in message
    assert "sk-" not in message  # not even the vendor's masked echo of it


@pytest.mark.parametrize("flavor", ["openrouter", "openai", "anthropic"])
def test_dropped_connection_is_provider_unavailable(keys, upstream, flavor):
    upstream.script(flavor=flavor, drop=True)
    with pytest.raises(errors.ProviderUnavailable, match="connection failed or was dropped"):
        ProviderFactory.create_provider(flavor).generate_content(MESSAGES)


@pytest.mark.parametrize("flavor", ["openrouter", "openai", "anthropic"])
def test_malformed_json_is_provider_unavailable(keys, upstream, flavor):
    upstream.script(flavor=flavor, malformed=True)
    with pytest.raises(errors.ProviderUnavailable) as caught:
        ProviderFactory.create_provider(flavor).generate_content(MESSAGES)
    assert type(caught.value) is errors.ProviderUnavailable


@pytest.mark.parametrize("flavor", ["openai", "anthropic"])
def test_slow_upstream_times_out(keys, upstream, flavor):
    keys.AI_REQUEST_TIMEOUT = 0.3
    upstream.script(flavor=flavor, delay=1.0)
    started = time.monotonic()
    with pytest.raises(errors.ProviderTimeout, match=r"No answer within 0\.3s"):
        ProviderFactory.create_provider(flavor).generate_content(MESSAGES)
    assert time.monotonic() - started < 0.9


def test_unknown_model_from_the_vendor_is_model_not_found(keys, upstream):
    with pytest.raises(errors.ModelNotFound):
        ProviderFactory.create_provider("openai").generate_content(MESSAGES, model="gpt-99-ultra")
    with pytest.raises(errors.ModelNotFound):
        ProviderFactory.create_provider("openrouter").generate_content(MESSAGES, model="acme/imaginary")


class TestRetries:
    def test_retryable_error_is_retried_then_succeeds(self, keys, upstream):
        keys.AI_MAX_RETRIES = 2
        upstream.script(flavor="anthropic", status=529)
        upstream.script(flavor="anthropic", status=500)
        result = ProviderFactory.create_provider("anthropic").generate_content(MESSAGES)
        assert result.attempts == 3
        assert len(upstream.requests) == 3

    def test_gives_up_after_the_configured_retries_no_more(self, keys, upstream):
        keys.AI_MAX_RETRIES = 2
        upstream.script(flavor="openai", status=503, times=5)
        with pytest.raises(errors.ProviderUnavailable):
            ProviderFactory.create_provider("openai").generate_content(MESSAGES)
        assert len(upstream.requests) == 3

    def test_non_retryable_errors_fail_fast(self, keys, upstream):
        keys.AI_MAX_RETRIES = 3
        upstream.script(flavor="openrouter", status=400)
        with pytest.raises(errors.InvalidRequest):
            ProviderFactory.create_provider("openrouter").generate_content(MESSAGES)
        assert len(upstream.requests) == 1

    def test_retry_after_is_honoured(self, keys, upstream):
        keys.AI_MAX_RETRIES = 1
        upstream.script(flavor="openrouter", status=429, headers={"Retry-After": "1"})
        with clock.use(clock.FakeClock()) as fake:
            result = ProviderFactory.create_provider("openrouter").generate_content(MESSAGES)
        assert fake.sleeps == [1.0]  # the Retry-After, once (the shared pause had run out by then)
        assert result.attempts == 2

    def test_retry_after_beyond_the_cap_is_not_waited_for(self, keys, upstream):
        keys.AI_MAX_RETRIES = 2
        keys.AI_RETRY_AFTER_CAP = 5
        upstream.script(flavor="openai", status=429, headers={"Retry-After": "120"})
        with clock.use(clock.FakeClock()) as fake, pytest.raises(errors.RateLimited) as caught:
            ProviderFactory.create_provider("openai").generate_content(MESSAGES)
        assert caught.value.retry_after == 120
        assert fake.sleeps == []
        assert len(upstream.requests) == 1
