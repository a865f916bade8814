"""Issue 20 (3): images in messages on every provider, through the real SDKs against the emulator.

One neutral image part (bytes + media type, or a URL) goes out as OpenAI `image_url` parts or
Anthropic `image` blocks; the reservation counts the image's tokens by the vendor's rule before the
call; a text-only model is refused with a typed error before any request.
"""

from __future__ import annotations

import base64
from decimal import Decimal

import pytest

from integrations.ai.gateway.service import AIService
from integrations.ai.providers import images
from integrations.ai.providers.errors import BudgetExceeded, InvalidRequest, NotSupported

from .beyond_text import KINDS, assert_priced_and_budgeted, ledger, make_gateway, png

pytestmark = pytest.mark.django_db

VISION = {"openai": "gpt-4o", "anthropic": "claude-3-5-sonnet", "openrouter": "openai/gpt-4o", "ollama": "llava"}


def photo_message(**image) -> dict:
    part = image or {"data": png(64, 48), "media_type": "image/png"}
    return {
        "role": "user",
        "content": [{"type": "text", "text": "Describe this product photo."}, {"type": "image", **part}],
    }


@pytest.mark.parametrize("kind", KINDS)
def test_an_image_description(kind, upstream):
    gateway = make_gateway(kind, upstream)
    result = AIService(site=gateway.site).complete([photo_message()], provider=gateway.provider, model=VISION[kind])
    assert "I see 1 image(s) (image/png 64x48)" in result.content
    body = upstream.requests_for(gateway.flavor)[-1].json
    data = base64.b64encode(png(64, 48)).decode()
    if kind == "anthropic":
        assert body["messages"][0]["content"][1] == {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": data},
        }
        image_tokens = 5  # ceil(64 x 48 / 750)
    else:
        assert body["messages"][0]["content"][1] == {
            "type": "image_url",
            "image_url": {"url": f"data:image/png;base64,{data}", "detail": "auto"},
        }
        image_tokens = 85 + 170  # one 512-px tile
    assert result.prompt_tokens == image_tokens + len(["Describe", "this", "product", "photo."])
    assert_priced_and_budgeted(gateway.site, calls=1)


@pytest.mark.parametrize(
    ("kind", "model"),
    [
        ("openai", "gpt-3.5-turbo"),
        ("anthropic", "claude-3-5-haiku"),
        ("openrouter", "anthropic/claude-3.5-haiku"),
        ("ollama", "llama3.1"),
    ],
)
def test_a_text_only_model_is_refused_before_the_call(kind, model, upstream):
    gateway = make_gateway(kind, upstream)
    with pytest.raises(NotSupported, match=r"does not support images") as caught:
        AIService(site=gateway.site).complete([photo_message()], provider=gateway.provider, model=model)
    assert caught.value.code == "not_supported"
    assert [r for r in upstream.requests if r.method == "POST"] == [] and ledger(gateway.site) == []


def test_the_reservation_counts_the_image_tokens(upstream):
    """A URL image's size is unknown before the vendor fetches it: the reservation takes OpenAI's worst case
    (85 + 8 x 170 tokens for gpt-4o), which the remaining budget covers for text but not for the image."""
    gateway = make_gateway("openai", upstream, monthly_budget=Decimal("0.003"))
    ai = AIService(site=gateway.site)
    text = {"role": "user", "content": "Describe this product photo."}
    ai.complete([text], model="gpt-4o", max_tokens=50)  # ~0.0006 reserved: fits
    with pytest.raises(BudgetExceeded):
        ai.complete([photo_message(url="https://example.com/tart.png")], model="gpt-4o", max_tokens=50)
    assert len([r for r in upstream.requests if r.method == "POST"]) == 1
    assert [r.status for r in ledger(gateway.site)] == ["ok", "refused"]


def test_each_vendors_token_rule():
    big = {"type": "image", "width": 4096, "height": 2048, "detail": "high"}
    assert images.openai_tokens(big, "gpt-4o") == 85 + 170 * 6  # 2048x1024 -> 1536x768: 3 x 2 tiles
    assert images.openai_tokens({**big, "detail": "low"}, "gpt-4o") == 85
    assert images.openai_tokens(big, "gpt-4o-mini") == 2833 + 5667 * 6
    assert images.anthropic_tokens({"type": "image", "width": 1000, "height": 1000}) == 1334  # 1e6 / 750
    assert images.anthropic_tokens(big) == 1600  # resized down, capped
    assert images.image_tokens(big, "openrouter", "anthropic/claude-3.5-sonnet") == 1600
    small = {"type": "image", "width": 64, "height": 48}
    assert images.openai_tokens(small, "gpt-4o") == 85 + 170  # never scaled up: one tile
    assert images.anthropic_tokens(small) == 5


def test_bad_images_are_refused_with_what_to_fix(upstream):
    gateway = make_gateway("openai", upstream)
    ai = AIService(site=gateway.site)
    with pytest.raises(InvalidRequest, match=r"the bytes are PNG, not image/jpeg"):
        ai.complete([photo_message(data=png(), media_type="image/jpeg")], model="gpt-4o")
    with pytest.raises(InvalidRequest, match=r"media_type must be one of"):
        ai.complete([photo_message(data=png(), media_type="image/tiff")], model="gpt-4o")
    with pytest.raises(InvalidRequest, match=r"is not a PNG, JPEG, GIF or WebP image"):
        ai.complete([photo_message(data=b"not an image", media_type="image/png")], model="gpt-4o")
    with pytest.raises(InvalidRequest, match=r"images go in user messages"):
        ai.complete(
            [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": [{"type": "image", "url": "https://example.com/a.png"}]},
                {"role": "user", "content": "and?"},
            ],
            model="gpt-4o",
        )
    assert upstream.requests == []


def test_an_image_by_url_goes_to_anthropic_as_a_url_block(upstream):
    gateway = make_gateway("anthropic", upstream)
    result = AIService(site=gateway.site).complete(
        [photo_message(url="https://example.com/tart.png")], model="claude-3-5-sonnet"
    )
    assert "I see 1 image(s) (url)" in result.content
    block = upstream.requests_for("anthropic")[-1].json["messages"][0]["content"][1]
    assert block == {"type": "image", "source": {"type": "url", "url": "https://example.com/tart.png"}}


def test_openrouter_reads_what_a_model_takes_from_its_catalogue(upstream):
    """Google's models have no row of their own in the table: OpenRouter's catalogue says Gemini takes images
    and Llama does not."""
    gateway = make_gateway("openrouter", upstream)
    ai = AIService(site=gateway.site)
    result = ai.complete([photo_message()], model="google/gemini-2.0-flash-001")
    assert "I see 1 image(s)" in result.content
    with pytest.raises(NotSupported, match=r"llama-3\.1-70b-instruct does not support images"):
        ai.complete([photo_message()], model="meta-llama/llama-3.1-70b-instruct")


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_an_image_in_a_system_message_is_named_not_called_empty(kind, upstream):
    """Issue 27: an image part where only text goes was refused as "content is empty"; the error now says
    what is not supported and where images go, before any request."""
    gateway = make_gateway(kind, upstream)
    system = {"role": "system", "content": [{"type": "image", "data": png(8, 8), "media_type": "image/png"}]}
    with pytest.raises(InvalidRequest) as caught:
        AIService(site=gateway.site).complete([system, photo_message()], provider=gateway.provider, model=VISION[kind])
    message = str(caught.value)
    assert "empty" not in message
    assert f"messages[0]: image parts are not supported in a system message ({gateway.provider})" in message
    assert "user message" in message
    text_parts = {"role": "system", "content": [{"type": "text", "text": "Be brief."}]}
    with pytest.raises(InvalidRequest, match=r"messages\[0\]\.content of a system message must be text"):
        AIService(site=gateway.site).complete([text_parts, photo_message()], provider=gateway.provider)
    assert [r for r in upstream.requests if r.method == "POST"] == [] and ledger(gateway.site) == []
