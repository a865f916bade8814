"""Which staff user manages which sites. Superusers manage every site."""

from __future__ import annotations

from django.conf import settings
from django.contrib.sites.models import Site
from django.db import models


class SiteMembership(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="site_memberships")
    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="memberships")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "site"], name="unique_site_membership")]
        ordering = ["site__domain", "user__username"]

    def __str__(self) -> str:
        return f"{self.user} manages {self.site.domain}"
