"""Translate → review side by side → accept screens of the page admin, and the page search by meaning.

As with meta and blocks (`admin_views`), nothing the model writes reaches a page until a person
accepts it: the proposal waits in the session under a one-time token; the accept request carries the
token and the (edited) texts and is checked again for the page, its site and the permissions.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import urlencode

from integrations.admin import streaming
from integrations.ai.providers.errors import AIProviderError
from prompts import run_previews
from tenancy.access import can_manage

from . import translation
from .admin_views import editable_page
from .blocks import BLOCK_LABELS
from .models import Page, PageTranslation

KIND = "page_translation"


class TranslateForm(forms.Form):
    language = forms.ChoiceField(choices=())
    only_stale = forms.BooleanField(required=False, label="Only the fields changed since the last translation")

    def __init__(self, *args: Any, page: Page, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["language"].choices = [(lang.code, str(lang)) for lang in translation.target_languages(page)]


def translations_of(page: Page) -> list[dict[str, Any]]:
    """Each existing translation of `page` with its stale units (for the screens)."""
    return [
        {"link": link, "stale": translation.stale_units(link)}
        for link in PageTranslation.objects.filter(source=page).select_related("page").order_by("language")
    ]


def _label(page: Page, key: str) -> str:
    if key in translation.PAGE_FIELDS:
        return Page._meta.get_field(key).verbose_name.capitalize()
    block_id, _, path = key.partition(".")
    block = page.blocks.filter(pk=int(block_id[1:])).first()
    kind = BLOCK_LABELS.get(block.type, block.type) if block else "Block"
    return f"{kind} block · {path.replace('.', ' / ')}"


def _current(link: PageTranslation | None, key: str) -> str:
    """The translation's text of `key` now (empty when there is none yet)."""
    if link is None:
        return ""
    if key in translation.PAGE_FIELDS:
        return str(getattr(link.page, key))
    block_id, _, path = key.partition(".")
    target = link.block_map.get(block_id[1:])
    block = link.page.blocks.filter(pk=target).first() if target else None
    value: Any = block.content if block else None
    for step in path.split("."):
        if isinstance(value, list) and step.isdigit() and int(step) < len(value):
            value = value[int(step)]
        elif isinstance(value, dict):
            value = value.get(step)
        else:
            return ""
    return value if isinstance(value, str) else ""


def render_review(
    model_admin: Any,
    request: HttpRequest,
    page: Page,
    token: str,
    proposal: translation.Proposal,
    edited: dict[str, str] | None = None,
) -> HttpResponse:
    link = PageTranslation.objects.filter(source=page, language=proposal.language).select_related("page").first()
    rows = [
        {
            "key": key,
            "label": _label(page, key),
            "source": text,
            "current": _current(link, key),
            "proposed": (edited or {}).get(key, proposal.translated.get(key, "")),
            "long": len(text) > 80,
        }
        for key, text in proposal.sources.items()
    ]
    removed = [key for key in proposal.units if key not in proposal.hashes]
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "original": page,
        "title": f"Review the {proposal.language} translation of “{page}”",
        "rows": rows,
        "token": token,
        "proposal": proposal,
        "link": link,
        "removed": removed,
    }
    return TemplateResponse(request, "admin/pages/page/translation_review.html", context)


def _check_may_translate(model_admin: Any, request: HttpRequest, page: Page, code: str) -> None:
    """The first translation into `code` creates a page: it needs the add permission (PermissionDenied)."""
    exists = PageTranslation.objects.filter(source=page, language=code).exists()
    if not exists and not model_admin.has_add_permission(request):
        raise PermissionDenied


def translate_view(model_admin: Any, request: HttpRequest, pk: int) -> HttpResponse:
    """Choose a language (and whether only stale fields), generate, then review. A GET with a token is the
    review step of a streamed translation (`translate_stream_view`'s `review_url`)."""
    page = editable_page(model_admin, request, pk)
    form = TranslateForm(request.POST or None, page=page)
    if request.method == "GET" and request.GET.get("token"):
        token = request.GET["token"]
        payload = run_previews.fetch(request, token, kind=KIND, page_id=page.pk)
        if payload is not None:
            return render_review(model_admin, request, page, token, translation.Proposal.from_dict(payload["proposal"]))
        model_admin.message_user(
            request, "This translation is unknown, expired or already saved: translate again.", messages.ERROR
        )
    if request.method == "POST" and form.is_valid():
        code = form.cleaned_data["language"]
        _check_may_translate(model_admin, request, page, code)
        try:
            proposal = translation.propose(page, code, only_stale=form.cleaned_data["only_stale"])
        except AIProviderError as exc:
            model_admin.message_user(
                request, f"No translation was proposed — {exc.code}: {exc.message}", messages.ERROR
            )
        else:
            if not proposal.units:
                model_admin.message_user(request, "The translation is up to date: nothing to translate.", messages.INFO)
            else:
                token = run_previews.keep(
                    request, {"kind": KIND, "page_id": page.pk, "site_id": page.site_id, "proposal": proposal.as_dict()}
                )
                return render_review(model_admin, request, page, token, proposal)
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "original": page,
        "title": f"Translate “{page}” with AI",
        "form": form,
        "translations": translations_of(page),
        "stream_url": reverse("admin:pages_page_translate_stream", args=[page.pk]),
    }
    return TemplateResponse(request, "admin/pages/page/translate.html", context)


def translate_stream_view(model_admin: Any, request: HttpRequest, pk: int) -> HttpResponse:
    """translate, streamed: the same call as the plain path (`translation.call_for`) with the raw answer
    as it arrives, then validated here against the same schema with the same glossary check and limits
    (`translation.from_stream`); a valid translation is kept for the review screen (the `done` event's
    `review_url`), an invalid one comes back as its errors. Nothing is saved here."""
    page = editable_page(model_admin, request, pk)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    form = TranslateForm(request.POST, page=page)
    if not form.is_valid():
        return JsonResponse({"error": {"code": "invalid_request", "message": form.errors.as_text()}}, status=400)
    code = form.cleaned_data["language"]
    _check_may_translate(model_admin, request, page, code)
    try:
        call = translation.call_for(page, code, only_stale=form.cleaned_data["only_stale"])
    except AIProviderError as exc:
        return JsonResponse({"error": {"code": exc.code, "message": exc.message}}, status=400)

    def keep(proposal: translation.Proposal) -> dict[str, Any]:
        token = run_previews.keep(
            request, {"kind": KIND, "page_id": page.pk, "site_id": page.site_id, "proposal": proposal.as_dict()}
        )
        request.session.save()  # a streamed body: the session middleware saved the session already
        url = reverse("admin:pages_page_translate", args=[page.pk])
        return {"review_url": f"{url}?{urlencode({'token': token})}"}

    if not call.texts:  # nothing to send to the model: removed units only, or up to date
        proposal = call.proposal({}, [])
        if proposal.units:
            return streaming.answered(keep(proposal))
        return streaming.answered({"errors": [], "message": "The translation is up to date: nothing to translate."})

    def finish(text: str, result: Any) -> dict[str, Any]:
        proposal, errors = translation.from_stream(call, text, result)
        if proposal is None:
            return {"errors": errors, "message": "The model's translation does not fit: nothing was saved."}
        return keep(proposal)

    return streaming.stream_answer(
        request, call.service(), call.prompt, call.call_parameters(), finish, attribute_to=call.attribute_to
    )


def accept_translation_view(model_admin: Any, request: HttpRequest) -> HttpResponse:
    """Save the ticked fields (with the person's edits) into the linked translation page."""
    if not model_admin.has_change_permission(request):
        raise PermissionDenied
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    token = request.POST.get("token", "")
    payload = run_previews.fetch(request, token, kind=KIND)
    if payload is None:
        model_admin.message_user(
            request, "This translation is unknown, expired or already saved: translate again.", messages.ERROR
        )
        return HttpResponseRedirect(reverse("admin:pages_page_changelist"))
    page = editable_page(model_admin, request, payload["page_id"])
    if not can_manage(request.user, page.site_id):
        raise PermissionDenied
    proposal = translation.Proposal.from_dict(payload["proposal"])
    link = PageTranslation.objects.filter(source=page, language=proposal.language).first()
    if link is None and not model_admin.has_add_permission(request):
        raise PermissionDenied
    edited = {key: request.POST.get(f"text-{key}", "").strip() for key in proposal.sources}
    accepted = {key: edited[key] for key in proposal.sources if request.POST.get(f"accept-{key}") == "on"}
    try:
        translated = translation.accept(proposal, accepted, user=request.user)
    except ValidationError as exc:
        model_admin.message_user(request, "Nothing was saved: " + "; ".join(exc.messages), messages.ERROR)
        return render_review(model_admin, request, page, token, proposal, edited)
    run_previews.forget(request, token)
    model_admin.message_user(
        request, f"Saved {len(accepted)} translated field(s) into “{translated}”.", messages.SUCCESS
    )
    return HttpResponseRedirect(reverse("admin:pages_page_change", args=[translated.pk]))
