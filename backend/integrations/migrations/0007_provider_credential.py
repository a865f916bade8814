# Per-site credentials as rows (issue 11): a provider added to the registry needs no migration.

import django.core.validators
import django.db.models.deletion
from django.db import migrations, models

import integrations.ai.providers.registry
import integrations.fields


class Migration(migrations.Migration):

    dependencies = [
        ('integrations', '0006_batchjob_cancel_retry'),
    ]

    operations = [
        migrations.CreateModel(
            name='ProviderCredential',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('provider', models.CharField(choices=integrations.ai.providers.registry.choices, max_length=20)),
                ('name', models.CharField(blank=True, default='', help_text="For an OpenAI-compatible endpoint, the name callers use, e.g. ollama. Leave empty for a direct provider (its name is the provider's).", max_length=20)),
                ('api_key', integrations.fields.SecretKeyField(blank=True, default='')),
                ('base_url', models.CharField(blank=True, default='', max_length=300, validators=[django.core.validators.URLValidator(schemes=['http', 'https'])])),
                ('default_model', models.CharField(blank=True, default='', max_length=200)),
                ('enabled', models.BooleanField(default=True)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('settings', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='credentials', to='integrations.aiprovidersettings')),
            ],
            options={
                'ordering': ['settings', 'provider', 'name'],
                'constraints': [models.UniqueConstraint(fields=('settings', 'name'), name='unique_credential_name_per_settings')],
            },
        ),
    ]
