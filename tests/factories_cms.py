"""factory-boy factories for the CMS models (pages, blocks, prompt templates)."""

from __future__ import annotations

import factory

from pages.models import Block, GlossaryTerm, Page, SiteLanguage
from prompts.models import PromptRun, PromptTemplate, PromptTemplateVersion

from .factories import SiteFactory


class PageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Page

    site = factory.SubFactory(SiteFactory)
    title = factory.Sequence(lambda n: f"Spring sale {n}")
    slug = factory.Sequence(lambda n: f"spring-sale-{n}")
    body = "Everything in the bakery is twenty percent off until Sunday, including sourdough and croissants."
    status = "published"


class BlockFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Block

    page = factory.SubFactory(PageFactory)
    type = "text"
    order = factory.Sequence(lambda n: n)
    content = factory.LazyFunction(lambda: {"body": "Fresh bread every morning."})


class SiteLanguageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SiteLanguage

    site = factory.SubFactory(SiteFactory)
    code = factory.Sequence(lambda n: f"x{chr(97 + n // 26 % 26)}{chr(97 + n % 26)}")  # xaa, xab: valid tags
    name = factory.Sequence(lambda n: f"Language {n}")


class GlossaryTermFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = GlossaryTerm

    site = factory.SubFactory(SiteFactory)
    term = factory.Sequence(lambda n: f"Term {n}")


class PromptTemplateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PromptTemplate

    site = None
    name = factory.Sequence(lambda n: f"Product blurb {n}")
    slug = factory.Sequence(lambda n: f"product-blurb-{n}")
    system_prompt = "You are a concise copywriter."
    template = "Write a blurb for {product} aimed at {audience}."
    default_model = "gpt-4o"
    max_tokens = 150
    temperature = 0.3


class PromptRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PromptRun

    template = factory.SubFactory(PromptTemplateFactory)
    site = factory.SubFactory(SiteFactory)
    variables = factory.LazyFunction(lambda: {"product": "rye", "audience": "students"})
    output = factory.Sequence(lambda n: f"Saved output {n}")
    model = "gpt-4o"
    provider = "openai"
    total_tokens = 10


class PromptTemplateVersionFactory(factory.django.DjangoModelFactory):
    """An extra, unlabelled version (saving a template already makes its v1)."""

    class Meta:
        model = PromptTemplateVersion

    template = factory.SubFactory(PromptTemplateFactory)
    number = factory.Sequence(lambda n: n + 1000)
    text = "Older text for {product}."
    content_hash = factory.Sequence(lambda n: f"hash{n}")
