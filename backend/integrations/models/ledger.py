"""Ledger tables: one row per upstream attempt (AIUsage), its daily roll-ups, budget periods and alerts,
per-key daily spend, and the rows the database refused (set aside)."""

from __future__ import annotations

from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.sites.models import Site
from django.db import models

from integrations.models.config import provider_choices


class AIUsage(models.Model):
    """One upstream attempt (or cache hit): who asked, what served, what it cost, how it ended."""

    STATUS_OK = "ok"
    STATUS_ERROR = "error"
    STATUS_CACHED = "cached"
    STATUS_REFUSED = "refused"  # stopped by the gateway (policy, rate limit, budget): no upstream request
    STATUS_CANCELLED = "cancelled"  # the caller went away mid-stream: charged what was streamed
    STATUS_CHOICES = [
        (STATUS_OK, "OK"),
        (STATUS_ERROR, "Error"),
        (STATUS_CACHED, "Cache hit"),
        (STATUS_REFUSED, "Refused"),
        (STATUS_CANCELLED, "Cancelled"),
    ]

    site = models.ForeignKey(Site, null=True, blank=True, on_delete=models.SET_NULL, related_name="ai_usage")
    service = models.CharField(max_length=50, default="general")
    provider = models.CharField(max_length=20, choices=provider_choices)
    requested_model = models.CharField(max_length=200, blank=True)
    served_model = models.CharField(max_length=200, blank=True)
    attempt = models.PositiveSmallIntegerField(default=1)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    total_tokens = models.PositiveIntegerField(default=0)
    # Parts of prompt_tokens / completion_tokens that vendors bill at other prices.
    cached_tokens = models.PositiveIntegerField(default=0, help_text="Prompt tokens read from the prompt cache.")
    cache_write_tokens = models.PositiveIntegerField(default=0, help_text="Prompt tokens written to the prompt cache.")
    reasoning_tokens = models.PositiveIntegerField(default=0, help_text="Completion tokens spent on reasoning.")
    cost = models.DecimalField(max_digits=14, decimal_places=8, null=True, blank=True)
    COST_SOURCES = [
        ("reported", "Reported by the provider"),
        ("price_table", "Model price (override)"),
        ("catalogue", "genai-prices catalogue"),
        ("free", "Free endpoint"),
        ("cache", "Response cache"),
        ("unpriced", "Unpriced: charged its worst-case estimate"),
        ("estimated", "Estimated: a stream cut off before the provider's usage"),
    ]
    cost_source = models.CharField(
        max_length=20,
        blank=True,
        choices=COST_SOURCES,
        help_text="Where the cost came from (integrations/ai/pricing.py); empty on refusals and errors.",
    )
    saved_cost = models.DecimalField(
        max_digits=14,
        decimal_places=8,
        default=0,
        help_text="What a cache saved: a response-cache hit's original cost, or prompt-cache reads below "
        "the prompt price.",
    )
    latency_ms = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=10, choices=STATUS_CHOICES)
    error_class = models.CharField(max_length=60, blank=True)
    error_message = models.CharField(max_length=500, blank=True)
    cache_hit = models.BooleanField(default=False)
    request_id = models.CharField(max_length=200, blank=True)
    # One key per row, made with the call's record before it is handed over (usage.row_fields): a batch
    # written again (a drainer that died between its commit and its acknowledgement, a Redis push that
    # timed out after arriving and was then written directly) is skipped, so a site never pays twice.
    # NULL only on rows written before issue 25.
    ledger_key = models.CharField(max_length=40, null=True, blank=True, unique=True, editable=False)
    # The content the call was for (a page, a prompt template), when the caller said (`usage.attributed_to`);
    # the label stays readable after the object is deleted.
    content_type = models.ForeignKey(
        "contenttypes.ContentType", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    object_id = models.PositiveBigIntegerField(null=True, blank=True)
    content_object = GenericForeignKey("content_type", "object_id")
    content_label = models.CharField(max_length=200, blank=True)
    # What the site's guardrails did to the call (integrations/ai/guardrails/): [{guardrail, outcome, detail}].
    # NULL or [] when none acted (rows inserted without the column, e.g. seed_usage's bulk insert, stay valid).
    guardrails = models.JSONField(null=True, blank=True, default=list)
    # The virtual key that made the call (the /v1 endpoints); its spend per key.
    api_key = models.ForeignKey(
        "APIToken", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=True
    )
    # The user the call was made for (integrations.ai.sites.callers.acting_for; a /v1 call: its key's
    # creator); NULL: unknown (a call with no user, and every row written before issue 27).
    user = models.ForeignKey(
        "auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=True
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "AI usage"
        verbose_name_plural = "AI usage"
        indexes = [
            models.Index(fields=["site", "created_at"]),
            models.Index(fields=["content_type", "object_id"], name="aiusage_content_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.provider}:{self.served_model or self.requested_model} {self.status}"


class UsageDaily(models.Model):
    """One day of the ledger for one (site, provider, model, service, status, error class): what the dashboard reads.

    Kept by the ledger writer in the transaction that inserts the raw rows (`integrations.usage.rollups`),
    and kept for ever: pruning raw `AIUsage` rows (`prune_usage`) never touches it, so the dashboard's
    numbers do not change when the ledger is pruned. `model` is the served model, or the requested one
    when nothing was served (refusals). `latency_histogram` maps a bucket's lower edge in ms (the
    latency rounded down to two significant digits) to its count; p50/p95 are read from it.
    """

    site = models.ForeignKey(Site, null=True, blank=True, on_delete=models.SET_NULL, related_name="ai_usage_daily")
    day = models.DateField(help_text="The day in TIME_ZONE.")
    provider = models.CharField(max_length=20)
    model = models.CharField(max_length=200, blank=True)
    service = models.CharField(max_length=50)
    status = models.CharField(max_length=10, choices=AIUsage.STATUS_CHOICES)
    error_class = models.CharField(max_length=60, blank=True)
    requests = models.PositiveBigIntegerField(default=0)
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)
    total_tokens = models.PositiveBigIntegerField(default=0)
    cached_tokens = models.PositiveBigIntegerField(default=0)
    cache_write_tokens = models.PositiveBigIntegerField(default=0)
    reasoning_tokens = models.PositiveBigIntegerField(default=0)
    cost = models.DecimalField(max_digits=18, decimal_places=8, default=0)
    saved_cost = models.DecimalField(max_digits=18, decimal_places=8, default=0)
    cache_hits = models.PositiveBigIntegerField(default=0)
    latency_sum = models.PositiveBigIntegerField(default=0, help_text="Sum of latency_ms.")
    latency_histogram = models.JSONField(default=dict, blank=True)
    unpriced = models.PositiveBigIntegerField(
        default=0, help_text="Calls no price source knew (cost source unpriced: charged their worst-case estimate)."
    )

    class Meta:
        verbose_name = "AI usage per day"
        verbose_name_plural = "AI usage per day"
        constraints = [
            models.UniqueConstraint(
                fields=["site", "day", "provider", "model", "service", "status", "error_class"],
                name="unique_usage_daily",
            )
        ]
        indexes = [models.Index(fields=["day", "site"])]

    def __str__(self) -> str:
        return f"{self.day} {self.site_id} {self.provider}:{self.model} {self.service} {self.status}: {self.requests}"


class BudgetPeriod(models.Model):
    """A site's spend in one calendar month, updated atomically so parallel requests cannot overrun a cap.

    `spent` is what the ledger writer has recorded (plus what calls settled here, see below). While Redis
    is unreachable the monthly cap is held here instead of in the shared counters (`governance.budget`):
    `reserved` holds the worst-case cost of those requests in flight (one conditional UPDATE, never past
    the cap), their settlement moves it to `spent` at once (their ledger rows then add nothing), and
    `version` goes up with each such change, so a Redis counter seeded from this row knows which of them
    it already includes.
    """

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="ai_budget_periods")
    month = models.DateField(help_text="First day of the month.")
    spent = models.DecimalField(max_digits=14, decimal_places=8, default=0)
    reserved = models.DecimalField(max_digits=14, decimal_places=8, default=0)
    version = models.BigIntegerField(default=0, help_text="Bumped by each reservation or settlement made here.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["site", "month"], name="unique_budget_period")]

    def __str__(self) -> str:
        return f"{self.site_id} {self.month:%Y-%m}: ${self.spent} (+${self.reserved} reserved)"


class UsageKeyDaily(models.Model):
    """One day of one virtual key's calls: the dashboard's and CSV's spend per key (`integrations.usage.keys`).

    Kept by the ledger writer beside `UsageDaily`, in the same transaction as the raw rows, and kept when
    the raw rows are pruned. `requests` counts answered attempts (ok, error, cached), `refused` the calls
    the gateway refused.
    """

    api_key = models.ForeignKey("APIToken", on_delete=models.CASCADE, related_name="usage_days")
    site = models.ForeignKey(Site, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    day = models.DateField(help_text="The day in TIME_ZONE.")
    requests = models.PositiveBigIntegerField(default=0)
    refused = models.PositiveBigIntegerField(default=0)
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)
    cost = models.DecimalField(max_digits=18, decimal_places=8, default=0)

    class Meta:
        verbose_name = "AI usage per key and day"
        verbose_name_plural = "AI usage per key and day"
        constraints = [models.UniqueConstraint(fields=["api_key", "day"], name="unique_usage_key_daily")]
        indexes = [models.Index(fields=["day", "site"], name="usage_key_daily_day_site")]

    def __str__(self) -> str:
        return f"{self.day} key {self.api_key_id}: {self.requests} requests, ${self.cost}"


class BudgetAlert(models.Model):
    """One threshold alert sent for one budget window's period: the unique row makes it once only."""

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="ai_budget_alerts")
    window = models.CharField(max_length=80, help_text="day, week, month or service:<name>.")
    period_start = models.DateField()
    threshold = models.PositiveSmallIntegerField(help_text="Percent of the cap.")
    cap = models.DecimalField(max_digits=14, decimal_places=6)
    spent = models.DecimalField(max_digits=14, decimal_places=8)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["site", "window", "period_start", "threshold"], name="unique_budget_alert")
        ]

    def __str__(self) -> str:
        return f"{self.site_id} {self.window} {self.period_start}: {self.threshold}%"


class LedgerDeadLetter(models.Model):
    """A ledger row the database would not store, set aside so the rows queued behind it are written.

    The ledger writer writes a batch; when that fails for anything but the database being unreachable,
    it writes the batch row by row and puts each row that still fails here, with why, instead of
    retrying the batch for ever (`integrations.ai.ledger.dead_letter`). `payload` is the row as ASCII
    JSON (so text no column could hold is kept, escaped); the usage dashboard counts these rows.
    """

    site_id = models.PositiveBigIntegerField(null=True, blank=True, db_index=True)  # no FK: kept as it was
    ledger_key = models.CharField(max_length=40, blank=True, db_index=True)
    cost = models.DecimalField(max_digits=14, decimal_places=8, null=True, blank=True)
    error = models.CharField(max_length=500)
    payload = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "ledger row set aside"
        verbose_name_plural = "ledger rows set aside"

    def __str__(self) -> str:
        return f"ledger row {self.ledger_key or self.pk} set aside: {self.error[:60]}"
