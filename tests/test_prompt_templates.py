"""Prompt templates: variables validated and named, generation with the template's parameters (issue 4)."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from integrations.ai.providers.errors import InvalidRequest
from prompts.models import TemplateVariableError, template_variables
from prompts.services.ai_service import AIContentService

from .factories_cms import PromptTemplateFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def site(emulated_site):
    return emulated_site("openrouter")


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("Hi {}", "is not a variable name"),
        ("Hi {0}", "is not a variable name"),
        ("Hi {a.b}", "is not a variable name"),
        ("Hi {name!r}", "format spec or conversion"),
        ("Hi {name:>10}", "format spec or conversion"),
    ],
)
def test_malformed_variables_are_rejected(template, problem):
    with pytest.raises(ValidationError, match=problem):
        PromptTemplateFactory.build(template=template).full_clean()


def test_variables_and_literal_braces():
    assert template_variables('Write {product} for {audience}; JSON like {{"a": 1}}. Again {product}.') == [
        "product",
        "audience",
    ]


def test_missing_and_extra_variables_are_named():
    template = PromptTemplateFactory.build(slug="blurb")
    with pytest.raises(TemplateVariableError, match="missing variable\\(s\\): audience; unknown variable\\(s\\): tone"):
        template.render({"product": "bread", "tone": "warm"})


def test_generate_uses_the_templates_model_and_parameters(site, upstream):
    template = PromptTemplateFactory(site=site)
    result = AIContentService().generate(template, {"product": "rye bread", "audience": "students"})
    body = upstream.requests[0].json
    assert body["model"] == "openai/gpt-4o"
    assert body["max_tokens"] == 150 and body["temperature"] == 0.3
    assert body["messages"] == [
        {"role": "system", "content": "You are a concise copywriter."},
        {"role": "user", "content": "Write a blurb for rye bread aimed at students."},
    ]
    assert result.content.endswith("Write a blurb for rye bread aimed at students.")


def test_overrides_win(site, upstream):
    template = PromptTemplateFactory(site=site)
    AIContentService().generate(
        template, {"product": "x", "audience": "y"}, model="claude-3-5-haiku", max_tokens=20, temperature=0.0
    )
    body = upstream.requests[0].json
    assert (body["model"], body["max_tokens"], body["temperature"]) == ("anthropic/claude-3.5-haiku", 20, 0.0)


def test_bad_variables_make_no_request(site, upstream):
    template = PromptTemplateFactory(site=site)
    with pytest.raises(InvalidRequest, match="missing variable\\(s\\): audience"):
        AIContentService().generate(template, {"product": "x"})
    assert upstream.requests == []
