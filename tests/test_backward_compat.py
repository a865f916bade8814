"""Code written against the plan's original call styles keeps working (issue 4)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


@pytest.fixture
def site(emulated_site):
    return emulated_site("openrouter", also=("openai",))


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


def params(function) -> list[tuple[str, object]]:
    import inspect

    return [(p.name, p.default) for p in inspect.signature(function).parameters.values()]


def test_the_services_keep_their_signatures():
    """The plan's call styles, parameter by parameter (names, order, defaults), not just "still callable"."""
    import inspect

    from integrations.ai import AIService
    from integrations.ai.providers.base import AIProviderInterface
    from pages.services.advanced_ai_service import AdvancedAIService
    from pages.services.ai_service import AIService as PagesAIService
    from prompts.services.ai_service import AIContentService

    empty = inspect.Parameter.empty
    assert params(AIService.generate_content)[:6] == [
        ("self", empty),
        ("prompt", empty),
        ("provider", None),
        ("model", None),
        ("max_tokens", 1000),
        ("temperature", 0.7),
    ]
    assert params(AIProviderInterface.generate_content)[:6] == [
        ("self", empty),
        ("messages", empty),
        ("model", None),
        ("max_tokens", 1000),
        ("temperature", 0.7),
        ("system_prompt", None),
    ]
    assert params(AdvancedAIService._call_ai_api) == [
        ("self", empty),
        ("prompt", empty),
        ("model", None),
        ("max_tokens", 500),
    ]
    assert params(PagesAIService.generate_meta_title)[:4] == [
        ("self", empty),
        ("title", empty),
        ("content", ""),
        ("model", None),
    ]
    assert params(PagesAIService.generate_meta_description)[:4] == [
        ("self", empty),
        ("title", empty),
        ("content", ""),
        ("model", None),
    ]
    assert params(AIContentService.generate)[:4] == [
        ("self", empty),
        ("template", empty),
        ("variables", empty),
        ("model", None),
    ]


def test_no_service_imports_a_vendor_sdk():
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "backend"
    offenders = []
    for path in [
        *root.glob("pages/**/*.py"),
        *root.glob("prompts/**/*.py"),
        root / "integrations/ai/gateway/service.py",
        root / "integrations/api/views.py",
    ]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in ("openai", "anthropic")]
    assert offenders == []
