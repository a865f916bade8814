"""Find the factory for any model: the hand-written one in tests/factories*.py, else a generic one.

The registry-driven tenancy test builds rows for every model an admin is registered for; a model
without a hand-written factory still gets rows, from its fields, so a new admin is covered at once.
"""

from __future__ import annotations

import datetime
import decimal
import inspect

import factory
from django.db import models
from django.utils import timezone

from . import factories, factories_cms

_GENERATED: dict[type[models.Model], type[factory.django.DjangoModelFactory]] = {}


def _hand_written() -> dict[type[models.Model], type[factory.django.DjangoModelFactory]]:
    found = {}
    for module in (factories, factories_cms):
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, factory.django.DjangoModelFactory) and obj._meta.model is not None:
                # the least derived factory for a model (UserFactory, not SuperUserFactory)
                found.setdefault(obj._meta.model, obj)
                if issubclass(found[obj._meta.model], obj):
                    found[obj._meta.model] = obj
    return found


def _declaration(field: models.Field):
    """A value for a required field, by its type; None when the field can be left to its default."""
    if field.has_default() or field.null or getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
        return None
    if field.choices:
        return field.choices[0][0]
    if isinstance(field, models.ForeignKey):
        return factory.SubFactory(factory_for(field.related_model))
    if isinstance(field, (models.CharField, models.TextField)):
        limit = field.max_length or 40
        return factory.Sequence(lambda n, name=field.name, limit=limit: f"{name}-{n}"[:limit])
    if isinstance(field, models.BooleanField):
        return False
    if isinstance(field, (models.IntegerField, models.FloatField)):
        return 1
    if isinstance(field, models.DecimalField):
        return decimal.Decimal(1)
    if isinstance(field, models.DateTimeField):
        return factory.LazyFunction(timezone.now)
    if isinstance(field, models.DateField):
        return datetime.date.today()
    if isinstance(field, models.JSONField):
        return factory.LazyFunction(dict)
    return None


def factory_for(model: type[models.Model]) -> type[factory.django.DjangoModelFactory]:
    """The factory that builds `model` rows: hand-written when there is one, else generated from its fields."""
    known = _hand_written()
    if model in known:
        return known[model]
    if model not in _GENERATED:
        attrs = {"Meta": type("Meta", (), {"model": model})}
        for field in model._meta.concrete_fields:
            if field.primary_key:
                continue
            value = _declaration(field)
            if value is not None:
                attrs[field.name] = value
        _GENERATED[model] = type(f"{model.__name__}AutoFactory", (factory.django.DjangoModelFactory,), attrs)
    return _GENERATED[model]
