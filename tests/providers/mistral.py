"""A provider of its own model family, added by a deployment: its spec names the family (`vendor`,
`model_prefixes`) and its class one option of its own (`safe_prompt`), nothing else.

Mistral's API speaks the OpenAI wire format; the emulator's compatible address serves it (any model id).
"""

from __future__ import annotations

from typing import ClassVar

from integrations.ai.providers.openai_provider import OpenAIProvider
from integrations.ai.providers.registry import ProviderSpec


class MistralProvider(OpenAIProvider):
    kind = "mistral"
    supported_options: ClassVar[frozenset[str]] = OpenAIProvider.supported_options | {"safe_prompt"}


SPEC = ProviderSpec(
    name="mistral",
    label="Mistral",
    class_path="tests.providers.mistral.MistralProvider",
    env_prefix="MISTRAL",
    default_base_url="https://api.mistral.ai/v1",
    default_model="mistral-small-latest",
    key_pattern=r"mst_[A-Za-z0-9]{16,}",
    vendor="mistral",
    model_prefixes=("mistral", "codestral"),
)
