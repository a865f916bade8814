"""factory-boy factories for every model the tests create."""

from __future__ import annotations

import secrets
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from django.contrib.sites.models import Site

from integrations.ai.providers import registry
from integrations.models import (
    AIProviderSettings,
    AIUsage,
    APIToken,
    BatchJob,
    EditorQuota,
    ModelMapping,
    ModelPrice,
    ProviderCredential,
    VirtualKey,
)
from tenancy.models import SiteMembership


class SiteFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Site
        django_get_or_create = ("domain",)

    domain = factory.Sequence(lambda n: f"site{n}.example.test")
    name = factory.LazyAttribute(lambda o: o.domain.split(".")[0].title())


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.test")
    is_staff = True
    password = factory.PostGenerationMethodCall("set_password", "pw-for-tests-only")

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class SuperUserFactory(UserFactory):
    is_superuser = True


class SiteMembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SiteMembership

    user = factory.SubFactory(UserFactory)
    site = factory.SubFactory(SiteFactory)


CREDENTIAL_FIELDS = ("api_key", "base_url", "default_model")


class AIProviderSettingsFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AIProviderSettings

    site = factory.SubFactory(SiteFactory)
    provider_type = "auto"
    enabled = True

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        """Accepts the old column kwargs (`openrouter_api_key=…`, `openai_base_url=…`,
        `anthropic_default_model=…`) and turns them into credential rows, one per provider named."""
        rows: dict[str, dict[str, str]] = {}
        for provider in registry.direct_names():
            for field in CREDENTIAL_FIELDS:
                value = kwargs.pop(f"{provider}_{field}", None)
                if value is not None:
                    rows.setdefault(provider, {})[field] = value
        record = super()._create(model_class, *args, **kwargs)
        for provider, values in rows.items():
            if any(values.values()):
                ProviderCredential.objects.create(settings=record, provider=provider, name=provider, **values)
        return record


class ProviderCredentialFactory(factory.django.DjangoModelFactory):
    """A site's own key for a provider; `provider="openai_compatible", name="ollama"` for an endpoint."""

    class Meta:
        model = ProviderCredential

    settings = factory.SubFactory(AIProviderSettingsFactory)
    provider = "openai"
    name = ""
    api_key = ""
    base_url = ""
    default_model = ""
    enabled = True


class ModelMappingFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ModelMapping

    site = None
    logical_name = factory.Sequence(lambda n: f"model-{n}")
    provider = "openai"
    provider_model_id = factory.LazyAttribute(lambda o: o.logical_name)


class ModelPriceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ModelPrice

    provider = "openai"
    model_id = factory.Sequence(lambda n: f"priced-model-{n}")
    prompt_per_million = Decimal("2.5")
    completion_per_million = Decimal("10")


class AIUsageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AIUsage

    site = factory.SubFactory(SiteFactory)
    service = factory.Sequence(lambda n: f"service-{n}")
    provider = "openai"
    requested_model = "gpt-4o-mini"
    served_model = factory.Sequence(lambda n: f"served-model-{n}")
    status = AIUsage.STATUS_OK
    prompt_tokens = 3
    completion_tokens = 7
    total_tokens = 10
    cost = Decimal("0.0001")
    request_id = factory.Sequence(lambda n: f"req-{n}")


class BatchJobFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BatchJob

    kind = factory.Sequence(lambda n: f"pages.generate_meta.{n}")
    site = factory.SubFactory(SiteFactory)
    status = "done"
    total = 1
    succeeded = 1


class APITokenFactory(factory.django.DjangoModelFactory):
    """A token row with a random secret; the raw token is not kept (tests that need it call `issue`)."""

    class Meta:
        model = APIToken

    user = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda n: f"token-{n}")
    prefix = factory.Sequence(lambda n: f"pnl_{n:06d}")
    key_hash = factory.LazyFunction(lambda: APIToken.digest(secrets.token_urlsafe(32)))


class VirtualKeyFactory(factory.django.DjangoModelFactory):
    """A /v1 virtual key row (scope v1, bound to a site); the raw key is not kept (tests call `keys.issue`)."""

    class Meta:
        model = VirtualKey

    user = factory.SubFactory(UserFactory)
    site = factory.SubFactory(SiteFactory)
    name = factory.Sequence(lambda n: f"key-{n}")
    prefix = factory.Sequence(lambda n: f"sk-panel-{n % 100:02d}")
    key_hash = factory.LazyFunction(lambda: APIToken.digest(secrets.token_urlsafe(32)))
    last4 = "abcd"
    scopes = factory.LazyFunction(lambda: ["v1"])


def may_use_ai(user, *perms: str):
    """Grant `user` the JSON API's `integrations.use_ai` permission (and `perms`, as "app.codename")."""
    from django.contrib.auth.models import Permission

    for name in ("integrations.use_ai", *perms):
        app, codename = name.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app, codename=codename))
    return user


class EditorQuotaFactory(factory.django.DjangoModelFactory):
    """An editor's quota on a site; the editor is made staff of that site (what the admin requires)."""

    class Meta:
        model = EditorQuota
        skip_postgeneration_save = True

    site = factory.SubFactory(SiteFactory)
    user = factory.SubFactory(UserFactory)
    monthly_budget = Decimal("5")

    @factory.post_generation
    def _membership(obj, create, extracted, **kwargs):
        if create and obj.user_id is not None:
            SiteMembership.objects.get_or_create(user=obj.user, site=obj.site)
