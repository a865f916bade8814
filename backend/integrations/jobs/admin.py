"""Batch jobs in the admin: a readable job page with live progress, cancel and retry.

The job page shows the items as a table (item, ok, error code and message), never the JSON the
row stores, and `static/integrations/batch_progress.js` polls a small JSON view while the job
runs (the list polls the same view for each running job's progress bar).

Who may do what (only ever within the user's sites: another site's job is a 404):
- see a job: the model's view/change permission, or having started it (an editor sees their own jobs);
- cancel it: whoever started it, the site's admins (`tenancy.access.is_site_admin`), or change_batchjob;
- retry it: the same people, holding the permissions of the work itself (KIND_PERMISSIONS).
Anyone else gets the refusal page (`tenancy.refusals.refuse`), and the buttons are shown (and
un-hidden by the page's polling) only to those whom the click will not refuse.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect, JsonResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme

from integrations import labels
from integrations.jobs import runner as jobs
from integrations.models import BatchJob
from tenancy.access import SiteScopedAdminMixin, is_site_admin, site_label, site_object_or_404
from tenancy.refusals import refuse

# What the work itself takes, on top of change_batchjob, to run it again.
KIND_PERMISSIONS = {
    "pages.generate_meta": ("pages.change_page",),
    "prompts.run_template_batch": ("prompts.view_prompttemplate", "prompts.add_promptrun"),
}
NEEDS_CONTROL = "to have started this batch, or to be an admin of its site"
POLL_ITEMS_MAX = 500  # items per progress answer; the page asks again from where it stopped


def kind_label(kind: str) -> str:
    return labels.service_label(kind)


def item_row(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "item": str(item.get("item", "")),
        "ok": bool(item.get("ok")),
        "code": str(item.get("code") or ""),
        "message": str(item.get("message") or ""),
    }


def controls(user: Any, job: BatchJob) -> bool:
    """Whether `user` may cancel or retry `job` (its site already checked): its starter, the site's admins,
    or anyone holding change_batchjob for the site."""
    return (
        (job.created_by_id is not None and job.created_by_id == user.pk)
        or is_site_admin(user, job.site_id)
        or user.has_perm("integrations.change_batchjob")
    )


def can_view(user: Any, job: BatchJob) -> bool:
    return (
        user.has_perm("integrations.view_batchjob")
        or user.has_perm("integrations.change_batchjob")
        or controls(user, job)
    )


def can_cancel(user: Any, job: BatchJob) -> bool:
    return not job.finished and controls(user, job)


def has_work_permissions(user: Any, job: BatchJob) -> bool:
    return all(user.has_perm(p) for p in KIND_PERMISSIONS.get(job.kind, ("-",)))


def can_retry(user: Any, job: BatchJob) -> bool:
    return jobs.can_retry(job) and controls(user, job) and has_work_permissions(user, job)


def progress_payload(job: BatchJob, user: Any, since: int = 0) -> dict[str, Any]:
    items = job.items[since : since + POLL_ITEMS_MAX]
    return {
        "id": job.pk,
        "status": job.status,
        "status_label": job.get_status_display(),
        "finished": job.finished,
        "total": job.total,
        "processed": job.processed,
        "succeeded": job.succeeded,
        "failed": job.failed,
        "percent": job.percent,
        "cancel_requested": job.cancel_requested,
        "error": job.error,
        "since": since,
        "next": since + len(items),
        "items": [item_row(i) for i in items],
        "can_cancel": can_cancel(user, job),
        "can_retry": can_retry(user, job),
    }


@admin.register(BatchJob)
class BatchJobAdmin(SiteScopedAdminMixin, admin.ModelAdmin):
    list_display = (
        "job",
        "site_name",
        "status",
        "progress",
        "succeeded",
        "failed",
        "created_by",
        "created_at",
        "finished_at",
    )
    list_filter = ("status", "kind", "site")
    list_select_related = ("site", "created_by")
    change_form_template = "admin/integrations/batchjob/change_form.html"
    change_list_template = "admin/integrations/batchjob/change_list.html"
    fields = (
        "kind_name",
        "site_name",
        "created_by",
        "created_at",
        "started_at",
        "finished_at",
        "retry_of_link",
        "options",
        "error",
    )
    readonly_fields = fields

    @admin.display(description="Job", ordering="-id")
    def job(self, obj: BatchJob) -> str:
        return f"#{obj.pk} {kind_label(obj.kind)}"

    @admin.display(description="Kind", ordering="kind")
    def kind_name(self, obj: BatchJob) -> str:
        return kind_label(obj.kind)

    @admin.display(description="Site", ordering="site__name")
    def site_name(self, obj: BatchJob) -> str:
        return site_label(obj.site)

    @admin.display(description="Retry of")
    def retry_of_link(self, obj: BatchJob) -> str:
        if obj.retry_of_id is None:
            return "—"
        return format_html(
            '<a href="{}">#{}</a>',
            reverse("admin:integrations_batchjob_change", args=[obj.retry_of_id]),
            obj.retry_of_id,
        )

    @admin.display(description="Options")
    def options(self, obj: BatchJob) -> str:
        """The settings a person chose, in words; the item lists stay out (they are the table below)."""
        params = obj.params or {}
        parts = []
        if params.get("model"):
            parts.append(f"model {params['model']}")
        if params.get("template_id"):
            from django.apps import apps

            # looked up by label: the prompts app sits above integrations (never imported from here)
            PromptTemplate = apps.get_model("prompts", "PromptTemplate")
            template = PromptTemplate.objects.filter(pk=params["template_id"]).first()
            parts.append(f"template “{template}”" if template else f"template #{params['template_id']} (deleted)")
        if params.get("page_ids") is not None:
            parts.append(f"{len(params['page_ids'])} selected page(s)")
        if params.get("variables") is not None:
            parts.append(f"{len(params['variables'])} row(s) of variables")
        return ", ".join(parts) or "defaults"

    @admin.display(description="Progress")
    def progress(self, obj: BatchJob) -> str:
        url = reverse("admin:integrations_batchjob_progress", args=[obj.pk])
        return format_html(
            '<span class="batch-progress" data-progress-url="{}" data-finished="{}">'
            '<progress max="100" value="{}"></progress> <span class="batch-count">{}/{}</span></span>',
            url,
            "1" if obj.finished else "",
            obj.percent,
            obj.processed,
            obj.total,
        )

    def has_add_permission(self, request):
        return False

    def has_view_permission(self, request, obj=None):
        """The model permission; or, for someone without it, the jobs they started (their own list)."""
        if super().has_view_permission(request, obj):
            return True
        user = request.user
        if obj is not None:
            return can_view(user, obj)
        return BatchJob.objects.filter(created_by=user).exists()

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        user = request.user
        if not (user.has_perm("integrations.view_batchjob") or user.has_perm("integrations.change_batchjob")):
            return qs.filter(created_by=user)  # an editor's list: the jobs they started
        return qs

    def get_object(self, request, object_id, from_field=None):
        """Any job of the user's sites, so that a same-site job they may not see is refused, not "missing"."""
        try:
            return SiteScopedAdminMixin.get_queryset(self, request).get(pk=object_id)
        except (BatchJob.DoesNotExist, ValueError, TypeError):
            return None

    def change_view(self, request, object_id, form_url="", extra_context=None):
        job = self.get_object(request, object_id)
        if job is not None and not can_view(request.user, job):
            refuse("permission to view batch jobs, or to have started this one")
        extra: dict[str, Any] = {
            "show_save": False,
            "show_save_and_continue": False,
            "show_save_and_add_another": False,
        }
        if job is not None:
            extra.update(
                {
                    "job": job,
                    "items": [item_row(i) for i in job.items],
                    "can_cancel": can_cancel(request.user, job),
                    "can_retry": can_retry(request.user, job),
                    "progress_url": reverse("admin:integrations_batchjob_progress", args=[job.pk]),
                }
            )
        return super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<int:pk>/progress/", wrap(self.progress_view), name="integrations_batchjob_progress"),
            path("<int:pk>/cancel/", wrap(self.cancel_view), name="integrations_batchjob_cancel"),
            path("<int:pk>/retry/", wrap(self.retry_view), name="integrations_batchjob_retry"),
            *super().get_urls(),
        ]

    def _job(self, request: HttpRequest, pk: int, change: bool) -> BatchJob:
        """The job of one of the user's sites (else 404); refused unless the user may see it, or, for
        `change`, cancel or retry it."""
        scoped = BatchJob.objects.select_related("site")  # the site check is site_object_or_404's
        job = site_object_or_404(request, scoped, pk)
        if change and not controls(request.user, job):
            refuse(NEEDS_CONTROL)
        if not can_view(request.user, job):
            refuse("permission to view batch jobs, or to have started this one")
        return job

    def progress_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        job = self._job(request, pk, change=False)
        if request.method != "GET":
            return HttpResponseNotAllowed(["GET"])
        try:
            since = max(0, int(request.GET.get("since", 0)))
        except ValueError:
            since = 0
        return JsonResponse(progress_payload(job, request.user, since))

    def cancel_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        job = self._job(request, pk, change=True)
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if jobs.cancel(job):
            self.message_user(
                request,
                f"Job #{job.pk} is cancelled: items already running finish, no new ones start.",
                messages.SUCCESS,
            )
        else:
            self.message_user(
                request, f"Job #{job.pk} had already finished ({job.get_status_display().lower()}).", messages.WARNING
            )
        back = request.POST.get("next", "")  # the page the button was on (a trial's), when it is this site's
        if not url_has_allowed_host_and_scheme(
            back, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        ):
            back = reverse("admin:integrations_batchjob_change", args=[job.pk])
        return HttpResponseRedirect(back)

    def retry_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        job = self._job(request, pk, change=True)
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not has_work_permissions(request.user, job):
            refuse(f"the permissions its work needs ({', '.join(KIND_PERMISSIONS.get(job.kind, ('-',)))})")
        if not job.finished or not jobs.can_retry(job):
            self.message_user(
                request,
                f"Job #{job.pk} has nothing to retry" + ("" if job.finished else " while it runs") + ".",
                messages.WARNING,
            )
            return HttpResponseRedirect(reverse("admin:integrations_batchjob_change", args=[job.pk]))
        new = jobs.retry(job, request.user, background=True)
        self.message_user(
            request,
            f"Started job #{new.pk} over the {len(jobs.retry_keys(job))} failed or unfinished "
            f"item(s) of job #{job.pk}.",
            messages.SUCCESS,
        )
        return HttpResponseRedirect(reverse("admin:integrations_batchjob_change", args=[new.pk]))
