"""Vendor knowledge lives in the vendor's spec and class (issue 26): a new provider of its own model
family serves that family's bare ids, and an OpenAI-format subclass's own options reach the wire."""

import pytest

from integrations.ai.gateway.service import AIService
from integrations.ai.providers.errors import ModelNotFound
from integrations.ai.providers.model_mapper import ModelMapper

MISTRAL_KEY = "mst_" + "4d" * 12


@pytest.fixture
def mistral(settings, upstream):
    settings.AI_PROVIDER_SPECS = ["tests.providers.mistral.SPEC"]
    settings.MISTRAL_API_KEY = MISTRAL_KEY
    settings.MISTRAL_BASE_URL = upstream.compatible_base_url  # takes any model id
    return settings


@pytest.mark.django_db
def test_a_new_family_provider_serves_its_bare_model_ids_and_refuses_another_family(mistral):
    mapper = ModelMapper()
    assert mapper.normalize_model_name("mistral-large-latest", "mistral") == "mistral-large-latest"
    assert mapper.normalize_model_name("codestral-latest", "mistral") == "codestral-latest"
    with pytest.raises(ModelNotFound, match="is a openai model"):
        mapper.normalize_model_name("gpt-4o", "mistral")
    with pytest.raises(ModelNotFound, match="is a mistral model"):
        mapper.normalize_model_name("mistral-large-latest", "openai")


@pytest.mark.django_db
def test_a_subclass_option_reaches_the_request_body(mistral, upstream):
    result = AIService(provider="mistral").generate_content("Hello", model="mistral-large-latest", safe_prompt=True)
    assert (result.provider, result.model) == ("mistral", "mistral-large-latest")
    body = upstream.requests[-1].json
    assert body["safe_prompt"] is True
    assert body["model"] == "mistral-large-latest"
