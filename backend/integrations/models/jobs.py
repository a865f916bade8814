"""Batch jobs: a bulk generation run and its per-item outcomes."""

from __future__ import annotations

from django.contrib.sites.models import Site
from django.db import models


class BatchJob(models.Model):
    """A bulk generation run (a Celery task, or in-process without a broker), with per-item outcomes."""

    STATUS_CHOICES = [
        ("pending", "Pending"),
        ("running", "Running"),
        ("done", "Done"),
        ("failed", "Failed"),
        ("cancelled", "Cancelled"),
    ]
    FINISHED = ("done", "failed", "cancelled")

    kind = models.CharField(max_length=60, help_text="Which handler runs it, e.g. pages.generate_meta.")
    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="ai_batch_jobs")
    params = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=STATUS_CHOICES, default="pending")
    total = models.PositiveIntegerField(default=0)
    succeeded = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    items = models.JSONField(default=list, blank=True, help_text="One entry per item: {item, ok, code, message}.")
    error = models.CharField(max_length=500, blank=True)
    task_id = models.CharField(max_length=100, blank=True)
    cancel_requested = models.BooleanField(
        default=False, help_text="Set from the admin; the job stops before its next items (jobs.checkpoint)."
    )
    retry_of = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="retries",
        help_text="The job whose failed items this one runs again.",
    )
    created_by = models.ForeignKey(
        "auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="ai_batch_jobs"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        from integrations.labels import service_label
        from tenancy.access import site_label

        return f"Job #{self.pk}: {service_label(self.kind)} for {site_label(self.site)}"

    @property
    def processed(self) -> int:
        return self.succeeded + self.failed

    @property
    def percent(self) -> int:
        return int(self.processed * 100 / self.total) if self.total else (100 if self.status == "done" else 0)

    @property
    def finished(self) -> bool:
        return self.status in self.FINISHED
