"""factory-boy factories for every model the tests create."""

from __future__ import annotations

import factory
from django.contrib.auth import get_user_model
from django.contrib.sites.models import Site

from integrations.models import AIProviderSettings, ModelMapping
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
