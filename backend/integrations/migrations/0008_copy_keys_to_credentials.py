"""Carry every site's keys, base URLs and default models from the nine columns into credential rows.

Only providers with something set get a row. The historical models use the real `SecretKeyField`,
so keys are decrypted on read and encrypted again on write: the plaintext is never stored. The
reverse copies the rows back into the columns, so the migration can be unapplied.
"""

from django.db import migrations

PROVIDERS = ("openrouter", "openai", "anthropic")


def forwards(apps, schema_editor):
    Settings = apps.get_model("integrations", "AIProviderSettings")
    Credential = apps.get_model("integrations", "ProviderCredential")
    for record in Settings.objects.all().iterator():
        for provider in PROVIDERS:
            key = getattr(record, f"{provider}_api_key") or ""
            base_url = getattr(record, f"{provider}_base_url") or ""
            default_model = getattr(record, f"{provider}_default_model") or ""
            if key or base_url or default_model:
                Credential.objects.update_or_create(
                    settings=record, name=provider,
                    defaults={"provider": provider, "api_key": key, "base_url": base_url,
                              "default_model": default_model, "enabled": True},
                )


def backwards(apps, schema_editor):
    Settings = apps.get_model("integrations", "AIProviderSettings")
    Credential = apps.get_model("integrations", "ProviderCredential")
    for record in Settings.objects.all().iterator():
        rows = {c.provider: c for c in Credential.objects.filter(settings=record, provider__in=PROVIDERS)
                if c.name in ("", c.provider)}
        for provider in PROVIDERS:
            row = rows.get(provider)
            setattr(record, f"{provider}_api_key", row.api_key if row else "")
            setattr(record, f"{provider}_base_url", row.base_url if row else "")
            setattr(record, f"{provider}_default_model", row.default_model if row else "")
        record.save()


class Migration(migrations.Migration):

    dependencies = [
        ('integrations', '0007_provider_credential'),
    ]

    operations = [
        migrations.RunPython(forwards, backwards),
    ]
