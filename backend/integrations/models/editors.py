"""Editors' AI quotas per site, and each editor's daily spend (issue 27).

`EditorQuota` is a site admin's monthly cap and requests-per-minute limit for one editor, or for
every editor of a group, on one site. The gateway never reads it: the site's snapshot resolves the
rows to one limit per user (`integrations.ai.sites.site_config`), and admission applies it as one
more governance scope (`integrations.ai.sites.callers`). `UsageUserDaily` is what the usage
dashboard's "by editor" numbers read (kept by the ledger writer, `integrations.usage.keys`).
"""

from __future__ import annotations

from django.contrib.sites.models import Site
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q


class EditorQuota(models.Model):
    """A monthly cap and a rate limit for one editor, or for each editor of a group, on one site.

    A user's own row wins over their groups'; of several groups' rows, the lowest cap and the lowest
    rate apply (each limit separately). A group's limits apply to each of its members apart (not to
    the group as one pool), and only to members who are staff of the site.
    """

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="ai_editor_quotas")
    user = models.ForeignKey(
        "auth.User",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="ai_editor_quotas",
        help_text="One editor (a staff member of the site). Give a user or a group, not both.",
    )
    group = models.ForeignKey(
        "auth.Group",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="ai_editor_quotas",
        help_text="Every editor of this group on the site, each with these limits.",
    )
    monthly_budget = models.DecimalField(
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        help_text="USD the editor may spend on this site per calendar month; empty: no cap of their own.",
    )
    requests_per_minute = models.PositiveIntegerField(
        null=True, blank=True, help_text="AI requests per minute; empty: no limit of their own."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "AI editor quota"
        constraints = [
            models.CheckConstraint(
                condition=Q(user__isnull=False, group__isnull=True) | Q(user__isnull=True, group__isnull=False),
                name="editor_quota_user_xor_group",
            ),
            models.UniqueConstraint(
                fields=["site", "user"], condition=Q(user__isnull=False), name="unique_editor_quota_user"
            ),
            models.UniqueConstraint(
                fields=["site", "group"], condition=Q(group__isnull=False), name="unique_editor_quota_group"
            ),
        ]

    def __str__(self) -> str:
        who = f"group {self.group}" if self.group_id else str(self.user)
        return f"{who} on {self.site.domain if self.site_id else '?'}"

    def clean(self) -> None:
        if (self.user_id is None) == (self.group_id is None):
            raise ValidationError("Choose one user or one group (not both).")
        if self.monthly_budget is None and not self.requests_per_minute:
            raise ValidationError("Set a monthly cap, a requests-per-minute limit, or both.")
        if self.monthly_budget is not None and self.monthly_budget < 0:
            raise ValidationError({"monthly_budget": "The monthly cap cannot be negative."})
        if self.user_id is not None and self.site_id is not None and not is_site_staff(self.user, self.site_id):
            raise ValidationError({"user": "Choose a staff member of this site (one with a membership of it)."})


def is_site_staff(user: models.Model, site_id: int) -> bool:
    """Whether `user` is an active staff user with a membership of the site (or a superuser)."""
    if not (user.is_active and user.is_staff):
        return False
    return bool(user.is_superuser or user.site_memberships.filter(site_id=site_id).exists())


class UsageUserDaily(models.Model):
    """One day of one editor's calls on one site: the dashboard's and CSV's spend per editor.

    Kept by the ledger writer beside `UsageDaily`, in the same transaction as the raw rows, and kept
    when the raw rows are pruned; rows with no user (unknown) are not counted here.
    """

    user = models.ForeignKey("auth.User", on_delete=models.CASCADE, related_name="+")
    site = models.ForeignKey(Site, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    day = models.DateField(help_text="The day in TIME_ZONE.")
    requests = models.PositiveBigIntegerField(default=0)
    refused = models.PositiveBigIntegerField(default=0)
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)
    cost = models.DecimalField(max_digits=18, decimal_places=8, default=0)

    class Meta:
        verbose_name = "AI usage per editor and day"
        verbose_name_plural = "AI usage per editor and day"
        constraints = [
            models.UniqueConstraint(fields=["user", "site", "day"], name="unique_usage_user_daily"),
        ]
        indexes = [models.Index(fields=["day", "site"], name="usage_user_daily_day_site")]

    def __str__(self) -> str:
        return f"{self.day} user {self.user_id}: {self.requests} requests, ${self.cost}"
