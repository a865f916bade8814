"""What text a vendor can be sent: refused before any network I/O (so never a provider failure).

Its own module so every wire-format module (base, images, conversation) can use it without a circle.
May import only `errors`.
"""

from __future__ import annotations

from .errors import InvalidRequest


def check_text(text: str, where: str, provider: str | None = None) -> None:
    """Refuse text no vendor can be sent: a NUL character, or an unpaired surrogate (not encodable as UTF-8).

    Raised as `InvalidRequest` before any network I/O, so it never counts as a provider failure,
    a retry or a step towards a cooldown.
    """
    if "\x00" in text:
        raise InvalidRequest(f"{where} contains a NUL character (\\x00); remove it.", provider=provider)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidRequest(
            f"{where} is not valid text: an unpaired surrogate at character {exc.start}. Send UTF-8 text.",
            provider=provider,
        ) from None
