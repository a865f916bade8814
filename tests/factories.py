"""factory-boy factories for every model the tests create."""

from __future__ import annotations

import secrets
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from django.contrib.sites.models import Site

from integrations.models import AIProviderSettings, AIUsage, APIToken, BatchJob, ModelMapping, ModelPrice
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


class AIProviderSettingsFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AIProviderSettings

    site = factory.SubFactory(SiteFactory)
    provider_type = "auto"
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
