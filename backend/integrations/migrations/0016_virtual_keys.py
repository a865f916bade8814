"""Virtual keys' own limits and revocation, and the key of each ledger row (issue 21)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("integrations", "0015_apitoken_site_expiry"),
    ]

    operations = [
        migrations.AddField(
            model_name="aiusage",
            name="api_key",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="integrations.apitoken",
            ),
        ),
        migrations.AddField(
            model_name="apitoken",
            name="allowed_models",
            field=models.JSONField(
                blank=True,
                default=list,
                help_text="Model names or patterns (gpt-4o*, anthropic/*); empty: any the site allows.",
            ),
        ),
        migrations.AddField(
            model_name="apitoken",
            name="last4",
            field=models.CharField(blank=True, help_text="The key's last four characters.", max_length=4),
        ),
        migrations.AddField(
            model_name="apitoken",
            name="monthly_budget",
            field=models.DecimalField(
                blank=True,
                decimal_places=2,
                help_text="USD this key may spend per calendar month.",
                max_digits=12,
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="apitoken",
            name="requests_per_minute",
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="apitoken",
            name="revoked_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="apitoken",
            name="tokens_per_minute",
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
    ]
