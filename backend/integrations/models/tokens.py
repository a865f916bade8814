"""API tokens: staff tokens for the JSON endpoint and the /v1 virtual keys (one table)."""

from __future__ import annotations

import datetime

from django.contrib.sites.models import Site
from django.db import models


class APIToken(models.Model):
    """A staff user's token for the JSON generation endpoint. Only a hash is stored; the token is shown once.

    A token never does more than its user may (staff, member of the site, `integrations.use_ai`, and
    `pages.change_page` to write into a page), and less when scoped: `site` (empty: every site its user
    manages, as tokens made before scopes existed), `scopes` (what it may be used for) and `expires_at`.
    """

    SCOPE_GENERATE = "generate"
    SCOPE_PAGES = "pages.write"
    SCOPE_V1 = "v1"  # a site's virtual key for the OpenAI/Anthropic-dialect /v1 endpoints (integrations.api.v1)
    SCOPES = {
        SCOPE_GENERATE: "Generate text",
        SCOPE_PAGES: "Write generated text into a page's fields",
        SCOPE_V1: "Call the site's /v1 endpoints (OpenAI and Anthropic clients)",
    }
    DEFAULT_LIFETIME = datetime.timedelta(days=90)

    user = models.ForeignKey("auth.User", on_delete=models.CASCADE, related_name="ai_api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12, help_text="The token's first characters, to recognise it.")
    key_hash = models.CharField(max_length=64, unique=True)
    site = models.ForeignKey(
        Site,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="ai_api_tokens",
        help_text="The one site this token works for; empty: every site its user manages.",
    )
    scopes = models.JSONField(default=list, blank=True, help_text=f"Among: {', '.join(SCOPES)}.")
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: never expires.")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    # A virtual key of the /v1 endpoints (scope "v1", integrations.api.v1) reaches its `site` only, with its own
    # limits on top of the site's (integrations.ai.sites.callers); empty means none.
    last4 = models.CharField(max_length=4, blank=True, help_text="The key's last four characters.")
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    monthly_budget = models.DecimalField(
        max_digits=12, decimal_places=2, null=True, blank=True, help_text="USD this key may spend per calendar month."
    )
    requests_per_minute = models.PositiveIntegerField(null=True, blank=True)
    tokens_per_minute = models.PositiveIntegerField(null=True, blank=True)
    allowed_models = models.JSONField(
        default=list,
        blank=True,
        help_text="Model names or patterns (gpt-4o*, anthropic/*); empty: any the site allows.",
    )

    class Meta:
        verbose_name = "AI API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @staticmethod
    def digest(raw: str) -> str:
        import hashlib

        return hashlib.sha256(raw.encode()).hexdigest()

    @classmethod
    def issue(
        cls,
        user,
        name: str,
        *,
        site: Site | None = None,
        scopes: tuple[str, ...] = (SCOPE_GENERATE,),
        expires_at: datetime.datetime | None = None,
    ) -> tuple[APIToken, str]:
        """A new token (and its raw value, shown once); unknown scopes are a ValueError naming them."""
        import secrets

        unknown = sorted(set(scopes) - set(cls.SCOPES))
        if unknown:
            raise ValueError(f"Unknown token scope(s) {', '.join(unknown)}; choose among {', '.join(cls.SCOPES)}.")
        raw = "pnl_" + secrets.token_urlsafe(32)
        token = cls.objects.create(
            user=user,
            name=name,
            prefix=raw[:10],
            key_hash=cls.digest(raw),
            site=site,
            scopes=list(dict.fromkeys(scopes)),
            expires_at=expires_at,
        )
        return token, raw


class VirtualKeyManager(models.Manager):
    def get_queryset(self) -> models.QuerySet:
        return super().get_queryset().filter(site__isnull=False, prefix__startswith="sk-panel-")


class VirtualKey(APIToken):
    """The /v1 endpoints' virtual keys: tokens bound to a site with the scope "v1" (the same table, one key model)."""

    objects = VirtualKeyManager()

    class Meta:
        proxy = True
        verbose_name = "AI API key (/v1)"
        verbose_name_plural = "AI API keys (/v1)"
