"""The API tests' site (served by the emulator through OpenAI), its staff member and their token."""

from __future__ import annotations

import pytest

from integrations.models import APIToken

from ..factories import AIProviderSettingsFactory, SiteFactory, SiteMembershipFactory, UserFactory, may_use_ai
from .calls import HOST, OAI_KEY


@pytest.fixture
def site(upstream, settings):
    settings.ALLOWED_HOSTS = ["*"]
    site = SiteFactory(domain=HOST)
    AIProviderSettingsFactory(
        site=site, provider_type="openai", openai_api_key=OAI_KEY, openai_base_url=upstream.openai_base_url
    )
    return site


@pytest.fixture
def staff(site):
    user = UserFactory(username="editor")
    SiteMembershipFactory(user=user, site=site)
    return may_use_ai(user, "pages.change_page")


@pytest.fixture
def token(staff):
    return APIToken.issue(staff, "storefront", scopes=(APIToken.SCOPE_GENERATE, APIToken.SCOPE_PAGES))[1]
