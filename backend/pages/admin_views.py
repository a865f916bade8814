"""Generate → preview → accept screens of the page admin: meta and blocks.

Nothing the model writes reaches a page until a person accepts it. The proposal is kept in the
session under a one-time token (`prompts.run_previews.keep`); the accept request carries only that
token and the (edited) text, and is checked again for the page, its site and the permission.
A POST that generated proposals (a paid call) answers with a redirect to the GET review screen
(`meta_review_redirect`), so Back or a reload never sends the generating POST again.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode

from integrations.admin import streaming
from integrations.ai.gateway.structured import problems
from integrations.ai.providers.errors import AIProviderError
from prompts import run_previews
from tenancy.access import can_manage, require_site

from . import provenance, staleness
from .block_forms import BlockContentForm
from .blocks import BLOCK_LABELS, BLOCK_TYPES, BlockValidationError, json_schema, validate_block
from .forms import GenerateBlockForm
from .models import META_DESCRIPTION_MAX, META_TITLE_MAX, Block, Page
from .review_checks import style_warnings
from .services import advanced_ai_service
from .services import ai_service as meta_service
from .services.advanced_ai_service import AdvancedAIService
from .services.ai_service import AIService

META_KIND, BLOCK_KIND, BLOCK_REGEN_KIND = "page_meta", "page_block", "page_block_regen"
MAX_PREVIEW_PAGES = 20  # more pages than this: the batch action (a BatchJob) is the right tool


class GenerateMetaForm(forms.Form):
    """The generate button: one fixed choice, so a stray POST is a form error, not a paid call."""

    step = forms.ChoiceField(choices=[("generate", "generate")], widget=forms.HiddenInput, initial="generate")
    model = forms.CharField(required=False, max_length=200, help_text="Empty: the site's default model.")


def editable_page(model_admin: Any, request: HttpRequest, pk: Any) -> Page:
    """The page, if this user may change it: 404 for another site's page, 403 without change_page."""
    page = get_object_or_404(model_admin.get_queryset(request).select_related("site"), pk=pk)
    require_site(request.user, page.site_id)
    if not model_admin.has_change_permission(request, page):
        raise PermissionDenied
    return page


def meta_row(page: Page, token: str, proposal: dict[str, Any], errors: list[str] | None = None) -> dict[str, Any]:
    return {
        "page": page,
        "token": token,
        "proposal": proposal,
        "errors": errors or [],
        "warnings": style_warnings(page.site_id, proposal.get("meta_title"), proposal.get("meta_description")),
        "title_limit": META_TITLE_MAX,
        "description_limit": META_DESCRIPTION_MAX,
    }


def propose_meta_rows(model_admin: Any, request: HttpRequest, pages: list[Page], model: str | None = None):
    """Generate a proposal per page (kept server-side); a failing page becomes an error message."""
    rows = []
    for page in pages:
        try:
            proposal = AIService().propose_meta(page, model=model)
        except AIProviderError as exc:
            model_admin.message_user(request, f"{page}: no proposal — {exc.code}: {exc.message}", messages.ERROR)
            continue
        payload = {
            "kind": META_KIND,
            "page_id": page.pk,
            "site_id": page.site_id,
            "meta_title": proposal.meta_title,
            "meta_description": proposal.meta_description,
            "model": proposal.model,
            "provider": proposal.provider,
            "total_tokens": proposal.total_tokens,
            "origin": proposal.origin.as_dict() if proposal.origin else None,
        }
        rows.append(meta_row(page, run_previews.keep(request, payload), payload))
    return rows


def render_meta_preview(
    model_admin: Any, request: HttpRequest, rows: list[dict[str, Any]], back: str | None = None
) -> HttpResponse:
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "rows": rows,
        "title": "Review generated meta",
        "back": back or reverse("admin:pages_page_changelist"),
    }
    return TemplateResponse(request, "admin/pages/page/meta_preview.html", context)


def meta_review_redirect(rows: list[dict[str, Any]], back: str | None = None) -> HttpResponse:
    """Redirect after the generating POST: the review screen (a GET) shows the kept proposals by token."""
    query = [("token", row["token"]) for row in rows] + ([("back", back)] if back else [])
    return HttpResponseRedirect(reverse("admin:pages_page_review_meta") + "?" + urlencode(query))


def review_meta_view(model_admin: Any, request: HttpRequest) -> HttpResponse:
    """The proposals behind the tokens in the URL, to review and accept; none left (saved or expired):
    back to the pages with a message, never a new call."""
    if not model_admin.has_change_permission(request):
        raise PermissionDenied
    back = request.GET.get("back", "")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        back = reverse("admin:pages_page_changelist")
    rows = []
    for token in request.GET.getlist("token"):
        payload = run_previews.fetch(request, token, kind=META_KIND)
        if payload is None:
            continue
        page = model_admin.get_queryset(request).select_related("site").filter(pk=payload["page_id"]).first()
        allowed = page is not None and can_manage(request.user, page.site_id)
        if allowed and model_admin.has_change_permission(request, page):
            rows.append(meta_row(page, token, payload))
    if not rows:
        model_admin.message_user(
            request,
            "These meta proposals were already saved or have expired: generate again for new ones.",
            messages.WARNING,
        )
        return HttpResponseRedirect(back)
    return render_meta_preview(model_admin, request, rows, back)


def regenerate_stale_meta(model_admin: Any, request: HttpRequest, queryset: Any) -> HttpResponse | None:
    """The bulk action: split the selection into stale and up-to-date pages, show the estimate, then propose."""
    pages = [
        p
        for p in queryset.select_related("site")
        if model_admin.has_change_permission(request, p) and can_manage(request.user, p.site_id)
    ]
    stale = [p for p in pages if staleness.meta_is_stale(p)]
    skipped = len(pages) - len(stale)
    if not stale:
        model_admin.message_user(
            request,
            f"No stale AI meta in the selection: {skipped} page(s) are up to date "
            "(same text, same prompt version) and were skipped.",
            messages.INFO,
        )
        return None
    if len(stale) > MAX_PREVIEW_PAGES:
        model_admin.message_user(
            request,
            f"{len(stale)} pages are stale; review works on up to {MAX_PREVIEW_PAGES} at a time: select fewer.",
            messages.ERROR,
        )
        return None
    if request.POST.get("confirm") != "yes":
        context = {
            **model_admin.admin_site.each_context(request),
            "opts": model_admin.model._meta,
            "title": "Regenerate stale AI meta",
            "stale": [(p, staleness.stale_reasons(p)) for p in stale],
            "skipped": skipped,
            "estimate": staleness.estimate_meta(stale),
            "selected": [p.pk for p in pages],
        }
        return TemplateResponse(request, "admin/pages/page/regenerate_stale.html", context)
    if skipped:
        model_admin.message_user(request, f"{skipped} up-to-date page(s) skipped.", messages.INFO)
    rows = propose_meta_rows(model_admin, request, stale)
    return meta_review_redirect(rows) if rows else None


def regenerate_stale_blocks(model_admin: Any, request: HttpRequest, queryset: Any) -> HttpResponse | None:
    """The blocks' bulk action: stale AI blocks of the selection only, an estimate first, then proposals to review.

    A block is stale when its page's text or the block prompt changed since it was generated; a block
    a person edited is never proposed again, and an up-to-date one sends nothing.
    """
    pages = [
        p
        for p in queryset.select_related("site")
        if model_admin.has_change_permission(request, p) and can_manage(request.user, p.site_id)
    ]
    stale = [item for page in pages for item in staleness.stale_blocks(page)]
    if not stale:
        model_admin.message_user(
            request,
            f"No stale AI blocks in the selection: the blocks of {len(pages)} page(s) "
            "are up to date (same text, same prompt version) or were edited by a person.",
            messages.INFO,
        )
        return None
    if len(stale) > MAX_PREVIEW_PAGES:
        model_admin.message_user(
            request,
            f"{len(stale)} blocks are stale; review works on up to {MAX_PREVIEW_PAGES} at a time: select fewer pages.",
            messages.ERROR,
        )
        return None
    if request.POST.get("confirm") != "yes":
        context = {
            **model_admin.admin_site.each_context(request),
            "opts": model_admin.model._meta,
            "title": "Regenerate stale AI blocks",
            "stale": stale,
            "estimate": staleness.estimate_blocks(stale),
            "selected": [p.pk for p in pages],
        }
        return TemplateResponse(request, "admin/pages/page/regenerate_stale_blocks.html", context)
    rows = []
    for item in stale:
        block, page = item.block, item.block.page
        try:
            proposed, origin = AdvancedAIService().propose_block_with_origin(
                page, block.type, item.instructions, model=item.model
            )
        except AIProviderError as exc:
            model_admin.message_user(
                request,
                f"{page}, {BLOCK_LABELS[block.type]} block: no proposal — {exc.code}: {exc.message}",
                messages.ERROR,
            )
            continue
        payload = {
            "kind": BLOCK_REGEN_KIND,
            "page_id": page.pk,
            "site_id": page.site_id,
            "block_id": block.pk,
            "type": block.type,
            "content": proposed.content,
            "was": provenance.block_text(block.content),
            "origin": origin.as_dict(),
        }
        rows.append(block_row(block, run_previews.keep(request, payload), proposed.content, item.reason))
    return render_block_preview(model_admin, request, rows) if rows else None


def block_row(block: Block, token: str, proposal: Any, reason: str = "", error: str = "") -> dict[str, Any]:
    return {
        "block": block,
        "page": block.page,
        "token": token,
        "proposal": proposal,
        "reason": reason,
        "error": error,
        "label": BLOCK_LABELS.get(block.type, block.type),
        "warnings": style_warnings(block.page.site_id, proposal),
    }


def render_block_preview(model_admin: Any, request: HttpRequest, rows: list[dict[str, Any]]) -> HttpResponse:
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "rows": rows,
        "title": "Review regenerated blocks",
    }
    return TemplateResponse(request, "admin/pages/page/blocks_preview.html", context)


def accept_blocks_view(model_admin: Any, request: HttpRequest) -> HttpResponse:
    """Replace the ticked blocks with their proposals, each checked again for the page, its site and permission.

    A block changed since its proposal was made (a person edited it meanwhile) is not overwritten.
    """
    if not model_admin.has_change_permission(request):
        raise PermissionDenied
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    saved, problems = [], []
    for token in request.POST.getlist("token"):
        payload = run_previews.fetch(request, token, kind=BLOCK_REGEN_KIND)
        if payload is None:
            problems.append("A proposal was unknown, expired or already saved: regenerate again.")
            continue
        page = model_admin.get_queryset(request).filter(pk=payload["page_id"]).first()
        if (
            page is None
            or not can_manage(request.user, page.site_id)
            or not model_admin.has_change_permission(request, page)
        ):
            problems.append("A proposal was for a page you can no longer change.")
            continue
        if request.POST.get(f"accept-{token}") != "on":
            run_previews.forget(request, token)
            continue
        block = Block.objects.filter(pk=payload["block_id"], page=page).first()
        if block is None or provenance.block_text(block.content) != payload["was"]:
            problems.append(f"{page}: the block was deleted or changed since the proposal; it was left as it is.")
            run_previews.forget(request, token)
            continue
        origin = provenance.Origin.from_dict(payload.get("origin"))
        with transaction.atomic():
            block.content = payload["content"]
            block.full_clean()
            if origin is not None:  # the new row first, so the save below sees the AI's text, not an edit
                provenance.record_block(block, origin, proposed=payload["content"], user=request.user)
            block.save(update_fields=["content", "updated_at"])
        run_previews.forget(request, token)
        saved.append(f"{page} ({BLOCK_LABELS.get(block.type, block.type)})")
    for problem in problems:
        model_admin.message_user(request, problem, messages.ERROR)
    if saved:
        model_admin.message_user(request, f"Replaced {len(saved)} block(s): {', '.join(saved)}.", messages.SUCCESS)
    elif not problems:
        model_admin.message_user(request, "No block was ticked: nothing was saved.", messages.WARNING)
    return HttpResponseRedirect(reverse("admin:pages_page_changelist"))


def generate_meta_view(model_admin: Any, request: HttpRequest, pk: int) -> HttpResponse:
    """One page: its current meta and a button that generates a proposal to review."""
    page = editable_page(model_admin, request, pk)
    form = GenerateMetaForm(request.POST or None)
    back = reverse("admin:pages_page_change", args=[page.pk])
    if request.method == "POST" and form.is_valid():
        rows = propose_meta_rows(model_admin, request, [page], form.cleaned_data["model"] or None)
        if rows:
            return meta_review_redirect(rows, back)
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "original": page,
        "title": f"Generate meta for “{page}”",
        "form": form,
        "title_limit": META_TITLE_MAX,
        "description_limit": META_DESCRIPTION_MAX,
        "stream_url": reverse("admin:pages_page_generate_meta_stream", args=[page.pk]),
    }
    return TemplateResponse(request, "admin/pages/page/generate_meta.html", context)


def stream_meta_view(model_admin: Any, request: HttpRequest, pk: int) -> HttpResponse:
    """generate-meta, streamed: the raw answer as it arrives, then checked here like the plain path
    (`META_SCHEMA`, then trimmed to the limits by `fitted_meta`); a usable answer is kept for the meta
    review screen (the `done` event's `review_url`), an unusable one comes back as its errors."""
    page = editable_page(model_admin, request, pk)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    form = GenerateMetaForm(request.POST)
    if not form.is_valid():
        return JsonResponse({"error": {"code": "invalid_request", "message": form.errors.as_text()}}, status=400)
    model = form.cleaned_data["model"] or None
    service = AIService(site=page.site_id)._ai()
    max_tokens = meta_service.META_PARAMETERS["max_tokens"]
    params = {
        **meta_service.META_PARAMETERS,
        **meta_service.reasoning_budget(service, model, max_tokens),
        "model": model,
        "system_prompt": meta_service.META_SYSTEM_PROMPT,
    }

    def finish(text: str, result: Any) -> dict[str, Any]:
        data, errors = problems(text, meta_service.META_SCHEMA)
        if not errors:
            try:
                meta = meta_service.fitted_meta(data, result.provider)
            except AIProviderError as exc:
                errors = list(getattr(exc, "errors", None) or [str(exc)])
        if errors:
            return {"errors": errors, "message": "The model's meta does not fit: nothing was saved."}
        origin = provenance.origin_of(
            [result], page, meta_service.META_PROMPT, {**meta_service.META_PARAMETERS, "model": model or ""}
        )
        payload = {
            "kind": META_KIND,
            "page_id": page.pk,
            "site_id": page.site_id,
            **meta,
            "model": result.model,
            "provider": result.provider,
            "total_tokens": result.total_tokens,
            "origin": origin.as_dict(),
        }
        token = run_previews.keep(request, payload)
        request.session.save()  # the response's headers are gone: the session middleware saved it already
        back = reverse("admin:pages_page_change", args=[page.pk])
        return {"review_url": meta_review_redirect([{"token": token}], back)["Location"]}

    prompt = meta_service.meta_prompt(page.title, page.body)
    return streaming.stream_answer(request, service, prompt, params, finish, attribute_to=page)


def accept_meta_view(model_admin: Any, request: HttpRequest) -> HttpResponse:
    """Save the ticked proposals, with the person's edits; anything invalid re-renders, nothing half-saved."""
    if not model_admin.has_change_permission(request):
        raise PermissionDenied
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    rows, ready = [], []
    for token in request.POST.getlist("token"):
        payload = run_previews.fetch(request, token, kind=META_KIND)
        if payload is None:
            model_admin.message_user(
                request, "A proposal was unknown, expired or already saved: generate again.", messages.ERROR
            )
            continue
        page = model_admin.get_queryset(request).filter(pk=payload["page_id"]).first()
        if (
            page is None
            or not can_manage(request.user, page.site_id)
            or not model_admin.has_change_permission(request, page)
        ):
            model_admin.message_user(request, "A proposal was for a page you can no longer change.", messages.ERROR)
            continue
        edited = {
            "meta_title": request.POST.get(f"meta_title-{token}", "").strip(),
            "meta_description": request.POST.get(f"meta_description-{token}", "").strip(),
        }
        accepted = request.POST.get(f"accept-{token}") == "on"
        errors = []
        if accepted:
            for field, label, limit in (
                ("meta_title", "Meta title", META_TITLE_MAX),
                ("meta_description", "Meta description", META_DESCRIPTION_MAX),
            ):
                if not edited[field]:
                    errors.append(f"{label} is empty: write one or untick this page.")
                elif len(edited[field]) > limit:
                    errors.append(f"{label} is {len(edited[field])} characters; at most {limit}.")
        rows.append(meta_row(page, token, {**payload, **edited}, errors))
        if accepted:
            ready.append((page, token, edited, payload))
    if any(row["errors"] for row in rows):
        model_admin.message_user(request, "Nothing was saved: fix the marked fields.", messages.ERROR)
        return render_meta_preview(model_admin, request, rows)
    for page, token, edited, payload in ready:
        AIService.apply_meta(page, edited["meta_title"], edited["meta_description"])
        origin = provenance.Origin.from_dict(payload.get("origin"))
        if origin is not None:
            provenance.record_meta(page, origin, proposed=payload, accepted=edited, user=request.user)
        run_previews.forget(request, token)
    for row in rows:
        if not any(row["token"] == token for _p, token, _e, _o in ready):
            run_previews.forget(request, row["token"])
    if ready:
        model_admin.message_user(
            request,
            f"Saved meta for {len(ready)} page(s): " + ", ".join(str(page) for page, _t, _e, _o in ready) + ".",
            messages.SUCCESS,
        )
    else:
        model_admin.message_user(request, "No page was ticked: nothing was saved.", messages.WARNING)
    if len(rows) == 1 and ready:
        return HttpResponseRedirect(reverse("admin:pages_page_change", args=[rows[0]["page"].pk]))
    return HttpResponseRedirect(reverse("admin:pages_page_changelist"))


def generate_block_view(model_admin: Any, request: HttpRequest, pk: int) -> HttpResponse:
    """Generate a block, review it rendered and as a form, edit, then add it (or drop it)."""
    page = editable_page(model_admin, request, pk)
    form = GenerateBlockForm(None if "_accept" in request.POST else (request.POST or None))
    proposal_form = token = None
    if request.method == "POST" and "_accept" in request.POST:
        token = request.POST.get("token", "")
        payload = run_previews.fetch(request, token, kind=BLOCK_KIND, page_id=page.pk)
        if payload is None:
            model_admin.message_user(
                request, "This proposal is unknown, expired or already saved: generate again.", messages.ERROR
            )
            token = None
        else:
            proposal_form = BlockContentForm(request.POST, block_type=payload["type"])
            if proposal_form.is_valid():
                block = AdvancedAIService.add_block(page, payload["type"], proposal_form.content())
                origin = provenance.Origin.from_dict(payload.get("origin"))
                if origin is not None:
                    provenance.record_block(block, origin, proposed=payload["content"], user=request.user)
                run_previews.forget(request, token)
                model_admin.message_user(request, f"Added a {BLOCK_LABELS[block.type]} block.", messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:pages_page_change", args=[page.pk]))
            model_admin.message_user(request, "Nothing was saved: fix the marked fields.", messages.ERROR)
    elif request.method == "GET" and request.GET.get("token"):  # the review step of a streamed proposal
        token = request.GET["token"]
        payload = run_previews.fetch(request, token, kind=BLOCK_KIND, page_id=page.pk)
        if payload is None:
            model_admin.message_user(
                request, "This proposal is unknown, expired or already saved: generate again.", messages.ERROR
            )
            token = None
        else:
            form = GenerateBlockForm(initial={"type": payload["type"]})
            proposal_form = BlockContentForm(block_type=payload["type"], content=payload["content"])
    elif request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            block, origin = AdvancedAIService().propose_block_with_origin(
                page, data["type"], data["instructions"], model=data["model"] or None
            )
        except AIProviderError as exc:
            model_admin.message_user(request, f"No block was proposed — {exc.code}: {exc.message}", messages.ERROR)
        else:
            token = run_previews.keep(
                request,
                {
                    "kind": BLOCK_KIND,
                    "page_id": page.pk,
                    "site_id": page.site_id,
                    "type": block.type,
                    "content": block.content,
                    "origin": origin.as_dict(),
                },
            )
            proposal_form = BlockContentForm(block_type=block.type, content=block.content)
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "original": page,
        "title": f"Generate a block for “{page}”",
        "form": form,
        "proposal_form": proposal_form,
        "token": token,
        "proposal": proposal_form.initial_content() if proposal_form is not None else None,
        "block_label": BLOCK_LABELS.get(proposal_form.block_type) if proposal_form is not None else "",
        "warnings": style_warnings(page.site_id, proposal_form.initial_content()) if proposal_form is not None else [],
        "stream_url": reverse("admin:pages_page_generate_block_stream", args=[page.pk]),
    }
    return TemplateResponse(request, "admin/pages/page/generate_block.html", context)


def stream_block_view(model_admin: Any, request: HttpRequest, pk: int) -> HttpResponse:
    """generate-block, streamed: the raw answer as it arrives, then validated here like the plain path
    (the block's JSON schema, then `validate_block`); a valid block is kept for the review step (the
    `done` event's `review_url`), an invalid one comes back as its errors. Nothing is saved here."""
    page = editable_page(model_admin, request, pk)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    form = GenerateBlockForm(request.POST)
    if not form.is_valid():
        return JsonResponse({"error": {"code": "invalid_request", "message": form.errors.as_text()}}, status=400)
    data = form.cleaned_data
    block_type, model = data["type"], data["model"] or None
    service = AdvancedAIService(site=page.site_id)._ai()
    params = {
        **advanced_ai_service.BLOCK_PARAMETERS,
        **advanced_ai_service.reasoning_budget(service, model, advanced_ai_service.BLOCK_PARAMETERS["max_tokens"]),
        "model": model,
        "system_prompt": advanced_ai_service.SYSTEM_PROMPT,
    }

    def finish(text: str, result: Any) -> dict[str, Any]:
        content, errors = problems(text, json_schema(block_type))
        if not errors:
            try:
                validate_block(block_type, content)
            except BlockValidationError as exc:
                errors = list(exc.errors)
        if errors:
            return {
                "errors": errors,
                "message": f"The model's {BLOCK_LABELS[block_type]} block does not fit: nothing was saved.",
            }
        origin = provenance.origin_of(
            [result],
            page,
            advanced_ai_service.BLOCK_PROMPT,
            {
                **advanced_ai_service.BLOCK_PARAMETERS,
                "model": data["model"],
                "type": block_type,
                "instructions": data["instructions"],
            },
        )
        token = run_previews.keep(
            request,
            {
                "kind": BLOCK_KIND,
                "page_id": page.pk,
                "site_id": page.site_id,
                "type": block_type,
                "content": content,
                "origin": origin.as_dict(),
            },
        )
        request.session.save()  # the response's headers are gone: the session middleware saved it already
        url = reverse("admin:pages_page_generate_block", args=[page.pk])
        return {"review_url": f"{url}?{urlencode({'token': token})}"}

    prompt = advanced_ai_service.block_prompt(block_type, page.title, data["instructions"])
    return streaming.stream_answer(request, service, prompt, params, finish, attribute_to=page)


class BlockTypeForm(forms.Form):
    type = forms.ChoiceField(choices=[(t, BLOCK_LABELS[t]) for t in BLOCK_TYPES])


def edit_block_view(model_admin: Any, request: HttpRequest, pk: int, block_id: int | None = None) -> HttpResponse:
    """Add or edit one block of a page with its type's form and a rendered preview."""
    page = editable_page(model_admin, request, pk)
    block = get_object_or_404(Block, pk=block_id, page=page) if block_id is not None else None
    block_type = block.type if block else request.GET.get("type") or request.POST.get("block_type")
    if block_type not in BLOCK_TYPES:
        context = {
            **model_admin.admin_site.each_context(request),
            "opts": model_admin.model._meta,
            "original": page,
            "title": f"Add a block to “{page}”",
            "form": BlockTypeForm(request.GET or None),
        }
        return TemplateResponse(request, "admin/pages/page/choose_block_type.html", context)
    form = BlockContentForm(
        request.POST or None, block_type=block_type, content=block.content if block else None, site_id=page.site_id
    )
    if request.method == "POST" and form.is_valid():
        if block is None:
            AdvancedAIService.add_block(page, block_type, form.content())
            model_admin.message_user(request, f"Added a {BLOCK_LABELS[block_type]} block.", messages.SUCCESS)
        else:
            block.content = form.content()
            block.full_clean()
            block.save(update_fields=["content", "updated_at"])
            model_admin.message_user(request, f"Saved the {BLOCK_LABELS[block_type]} block.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:pages_page_change", args=[page.pk]))
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "original": page,
        "title": f"{'Edit' if block else 'Add'} a {BLOCK_LABELS[block_type]} block of “{page}”",
        "proposal_form": form,
        "block_type": block_type,
        "block": block,
        "proposal": form.initial_content(),
    }
    return TemplateResponse(request, "admin/pages/page/edit_block.html", context)
