"""A provider that lives outside the project, as a deployment would add one: one module, one spec.

Together AI speaks the OpenAI wire format; its keys look like `tgp_v1_…`. Registered with
`AI_PROVIDER_SPECS = ["tests.providers.together.SPEC"]` and nothing else.
"""

from __future__ import annotations

from integrations.ai.providers.openai_provider import OpenAIProvider
from integrations.ai.providers.registry import ProviderSpec


class TogetherProvider(OpenAIProvider):
    kind = "together"


SPEC = ProviderSpec(
    name="together",
    label="Together AI",
    class_path="tests.providers.together.TogetherProvider",
    env_prefix="TOGETHER",
    default_base_url="https://api.together.xyz/v1",
    default_model="meta-llama/Llama-3.3-70B-Instruct-Turbo",
    key_pattern=r"tgp_v1_[A-Za-z0-9_\-]{8,}",
    model_ids="passthrough",
    auto_rank=25,
)
