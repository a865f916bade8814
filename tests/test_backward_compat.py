"""Code written against the plan's original call styles keeps working (issue 4)."""

from __future__ import annotations

import pytest

from .factories import AIProviderSettingsFactory

OR_KEY = "sk-or-v1-" + "b8" * 24
OAI_KEY = "sk-proj-" + "b9" * 24

pytestmark = pytest.mark.django_db


@pytest.fixture
def site(upstream):
    return AIProviderSettingsFactory(
        provider_type="openrouter", openrouter_api_key=OR_KEY, openrouter_base_url=upstream.openrouter_base_url,
        openai_api_key=OAI_KEY, openai_base_url=upstream.openai_base_url,
    ).site


def test_the_plans_import_path_and_signature(site, upstream):
    from integrations.ai import AIService

    result = AIService(site).generate_content("Hello", None, "gpt-4o", 100, 0.5)  # positional, as in the plan
    assert result["content"].endswith("Hello")
    assert result["provider"] == "openrouter" and result["model"] == "openai/gpt-4o"
    assert isinstance(result["tokens_used"], int) and result["tokens_used"] > 0
    assert upstream.requests[0].json["model"] == "openai/gpt-4o"  # un-prefixed name mapped


def test_provider_override_still_works(site, upstream):
    from integrations.ai import AIService

    result = AIService(site).generate_content("Hello", provider="openai", model="gpt-4o")
    assert result.provider == "openai" and upstream.requests[0].flavor == "openai"
    assert upstream.requests[0].json["model"] == "gpt-4o"


def test_the_services_keep_their_classes(site):
    from pages.services.advanced_ai_service import AdvancedAIService
    from pages.services.ai_service import AIService as PagesAIService
    from prompts.services.ai_service import AIContentService

    assert callable(AdvancedAIService()._call_ai_api)
    assert callable(PagesAIService().generate_meta_title)
    assert callable(AIContentService().generate)


def test_no_service_imports_a_vendor_sdk():
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "backend"
    offenders = []
    for path in [*root.glob("pages/**/*.py"), *root.glob("prompts/**/*.py"), root / "integrations/ai/service.py",
                 root / "integrations/api_views.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in ("openai", "anthropic")]
    assert offenders == []
