"""Build the daily roll-ups (`UsageDaily`) from the ledger rows written before they existed."""

from django.db import migrations


def build(apps, schema_editor):
    from integrations.usage.rollups import rebuild

    rebuild(apps.get_model("integrations", "AIUsage"), apps.get_model("integrations", "UsageDaily"))


def clear(apps, schema_editor):
    apps.get_model("integrations", "UsageDaily").objects.all().delete()


class Migration(migrations.Migration):

    dependencies = [
        ("integrations", "0011_usage_daily"),
    ]

    operations = [
        migrations.RunPython(build, clear),
    ]
