"""The page list's "find by meaning" search and the page form's related pages, scoped to the user's sites.

`?meaning=...` on the page changelist is taken off the query string (the changelist refuses unknown
parameters) and answered by `search.nearest_ids` per site the user manages (or the site filtered on),
best first; the queryset keeps only those pages, ordered by rank.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.admin.views.main import ChangeList
from django.db.models import Case, IntegerField, QuerySet, Value, When
from django.http import HttpRequest

from integrations.ai.providers.errors import AIProviderError
from tenancy.access import site_ids_for

from . import search
from .models import Page, PageEmbedding

RESULTS = 20


def take_meaning_query(model_admin: Any, request: HttpRequest) -> None:
    """Move `meaning` off the changelist's GET parameters, search, and keep the ranked ids on the request."""
    text = request.GET.get("meaning", "").strip()
    if "meaning" in request.GET:
        query = request.GET.copy()
        query.pop("meaning")
        request.GET = query
    request.meaning = text
    if not text:
        return
    allowed = site_ids_for(request.user)
    chosen = request.GET.get("site__id__exact")
    sites = set(PageEmbedding.objects.values_list("site_id", flat=True).distinct()) if allowed is None else allowed
    if chosen and chosen.isdigit():
        sites = {int(chosen)} & (sites if allowed is not None else {int(chosen)})
    ranked: list[tuple[int, float]] = []
    for site_id in sorted(sites):
        try:
            ranked += search.nearest_ids(site_id, text, RESULTS)
        except AIProviderError as exc:
            model_admin.message_user(request, f"Search by meaning failed — {exc.code}: {exc.message}", messages.ERROR)
    ranked = [item for item in ranked if item[1] > 0]  # nothing in common with the query: not a match
    ranked.sort(key=lambda item: -item[1])
    request.meaning_ids = [pk for pk, _ in ranked[:RESULTS]]


class MeaningChangeList(ChangeList):
    """The page list, ranked by meaning while a `meaning` search is on."""

    def get_ordering(self, request: HttpRequest, queryset: QuerySet) -> list:
        if getattr(request, "meaning_ids", None) is not None:
            return ["meaning_rank", "-pk"]
        return super().get_ordering(request, queryset)


def by_meaning(model_admin: Any, request: HttpRequest, queryset: QuerySet) -> QuerySet:
    ids = getattr(request, "meaning_ids", None)
    if ids is None:
        return queryset
    rank = (
        Case(
            *[When(pk=pk, then=Value(i)) for i, pk in enumerate(ids)],
            default=Value(len(ids)),
            output_field=IntegerField(),
        )
        if ids
        else Value(0, output_field=IntegerField())
    )
    return queryset.filter(pk__in=ids).annotate(meaning_rank=rank)


def related_to(page: Page, k: int = 5) -> list[search.Hit]:
    """The page's nearest pages of its own site (the vectors are per site: never another site's)."""
    return search.related(page, k)
