"""The image admin's own screens: file and thumbnail, generate alt text, review and accept, the batch estimate.

Every view re-reads the image through the admin's site-scoped queryset (another site's image is a
404) and checks the change permission before anything is generated or saved. Files are streamed
from storage through these views, so the admin works the same with local or S3-style storage and no
file is served to someone who may not see its site.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse

from integrations.ai.providers.errors import AIProviderError
from tenancy.access import can_manage, require_site

from . import alt_text
from .models import ALT_TEXT_MAX, Image
from .tasks import estimate_images, start_alt_text

MAX_REVIEW = 20
MAX_BATCH = 500


def visible_image(model_admin: Any, request: HttpRequest, pk: int, change: bool = False) -> Image:
    image = get_object_or_404(model_admin.get_queryset(request).select_related("site"), pk=pk)
    require_site(request.user, image.site_id)
    allowed = (
        model_admin.has_change_permission(request, image) if change else model_admin.has_view_permission(request, image)
    )
    if not allowed:
        raise PermissionDenied
    return image


def file_view(model_admin: Any, request: HttpRequest, pk: int, which: str = "file") -> HttpResponse:
    image = visible_image(model_admin, request, pk)
    stored = image.thumbnail if which == "thumbnail" and image.thumbnail else image.file
    response = FileResponse(
        stored.open("rb"), content_type="image/png" if stored is image.thumbnail else image.media_type
    )
    response["Cache-Control"] = "private, max-age=300"
    response["X-Content-Type-Options"] = "nosniff"
    return response


def generate_view(model_admin: Any, request: HttpRequest, pk: int) -> HttpResponse:
    """POST: one proposal for this image, then its review screen."""
    image = visible_image(model_admin, request, pk, change=True)  # another site's image: 404, whatever the method
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    try:
        alt_text.propose(image, model=request.POST.get("model", "").strip()[:200] or None)
    except AIProviderError as exc:
        model_admin.message_user(request, f"No alt text was proposed — {exc.code}: {exc.message}", messages.ERROR)
        return HttpResponseRedirect(reverse("admin:images_image_change", args=[image.pk]))
    return HttpResponseRedirect(reverse("admin:images_image_review_alt") + f"?ids={image.pk}")


def review_view(model_admin: Any, request: HttpRequest) -> HttpResponse:
    """The proposals of the chosen images next to their current alt text: edit, tick, save (or discard)."""
    if not model_admin.has_change_permission(request):
        raise PermissionDenied
    source = request.POST if request.method == "POST" else request.GET
    ids = [int(i) for i in source.get("ids", "").split(",") if i.strip().isdigit()][:MAX_REVIEW]
    images = [
        i
        for i in model_admin.get_queryset(request).select_related("site").filter(pk__in=ids)
        if can_manage(request.user, i.site_id) and model_admin.has_change_permission(request, i)
    ]
    errors: dict[int, str] = {}
    if request.method == "POST":
        saved, dropped = [], 0
        for image in images:
            if not image.alt_proposal:
                continue
            if request.POST.get(f"accept-{image.pk}") != "on":
                if "_discard" in request.POST:
                    alt_text.discard(image)
                    dropped += 1
                continue
            try:
                alt_text.accept(image, request.POST.get(f"alt-{image.pk}", ""), user=request.user)
            except (LookupError, ValueError) as exc:
                errors[image.pk] = str(exc)
                continue
            saved.append(image.title)
        if saved:
            model_admin.message_user(
                request, f"Saved alt text for {len(saved)} image(s): {', '.join(saved)}.", messages.SUCCESS
            )
        if dropped:
            model_admin.message_user(request, f"Discarded {dropped} proposal(s).", messages.INFO)
        if not errors:
            if len(images) == 1 and saved:
                return HttpResponseRedirect(reverse("admin:images_image_change", args=[images[0].pk]))
            return HttpResponseRedirect(reverse("admin:images_image_changelist"))
    rows = [
        {
            "image": i,
            "error": errors.get(i.pk, ""),
            "text": request.POST.get(f"alt-{i.pk}", i.alt_proposal) if errors else i.alt_proposal,
            "origin": i.alt_proposal_origin or {},
        }
        for i in images
    ]
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "title": "Review proposed alt text",
        "rows": rows,
        "ids": ",".join(str(i.pk) for i in images),
        "limit": ALT_TEXT_MAX,
    }
    return TemplateResponse(request, "admin/images/image/review_alt.html", context)


class BatchAltForm(forms.Form):
    model = forms.CharField(required=False, max_length=200, help_text="Empty: each site's default model.")


def batch_action(model_admin: Any, request: HttpRequest, queryset: Any) -> HttpResponse | None:
    """The bulk action: the estimate per site, then on "Start batch" a job per site."""
    images = [
        i
        for i in queryset.select_related("site").order_by("pk")[: MAX_BATCH + 1]
        if can_manage(request.user, i.site_id) and model_admin.has_change_permission(request, i)
    ]
    if not images:
        model_admin.message_user(request, "None of the selected images can be changed by you.", messages.WARNING)
        return None
    if len(images) > MAX_BATCH:
        model_admin.message_user(request, f"A batch holds at most {MAX_BATCH} images: select fewer.", messages.ERROR)
        return None
    submitted = "_estimate" in request.POST or "_start" in request.POST
    form = BatchAltForm(request.POST if submitted else None)
    model = (form.cleaned_data["model"].strip() or None) if form.is_valid() else None
    by_site: dict[int, list[Image]] = {}
    for image in images:
        by_site.setdefault(image.site_id, []).append(image)
    estimates = [estimate_images(group[0].site, group, model) for group in by_site.values()]
    blocked = any(e.blocked for e in estimates)
    if "_start" in request.POST and form.is_valid():
        if blocked:
            model_admin.message_user(
                request, "Nothing was started: fix the problems shown in the estimate.", messages.ERROR
            )
        else:
            jobs = [
                start_alt_text(
                    group[0].site, request.user, background=True, image_ids=[i.pk for i in group], model=model or ""
                )
                for group in by_site.values()
            ]
            model_admin.message_user(
                request,
                f"Started {len(jobs)} alt text job(s) for {len(images)} image(s): "
                + ", ".join(f"#{job.pk}" for job in jobs)
                + ". Review the proposals from the "
                "image list (filter: proposal to review).",
                messages.SUCCESS,
            )
            if len(jobs) == 1 and request.user.has_perm("integrations.view_batchjob"):
                return HttpResponseRedirect(reverse("admin:integrations_batchjob_change", args=[jobs[0].pk]))
            return HttpResponseRedirect(reverse("admin:images_image_changelist") + "?alt=proposal")
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "title": "Generate alt text with AI (batch)",
        "images": images,
        "form": form,
        "estimates": estimates,
        "blocked": blocked,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
    }
    return TemplateResponse(request, "admin/images/image/batch_confirm.html", context)
