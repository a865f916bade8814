"""The CMS services' error for an answer they could not use (nothing saved)."""

from __future__ import annotations

from integrations.ai.providers.errors import InvalidOutput, InvalidRequest


class ServiceOutputError(InvalidOutput, InvalidRequest):
    """A service's answer that could not be used, nothing saved.

    It is the gateway's `InvalidOutput` (the model's fault, `errors` lists what was wrong) and also
    the `InvalidRequest` these services raised before they moved onto structured output, so callers
    that catch either keep working.
    """
