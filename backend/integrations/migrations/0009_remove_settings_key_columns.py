# The keys now live in ProviderCredential rows (copied by 0006).

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('integrations', '0008_copy_keys_to_credentials'),
    ]

    operations = [
        migrations.RemoveField(model_name='aiprovidersettings', name='openrouter_api_key'),
        migrations.RemoveField(model_name='aiprovidersettings', name='openrouter_base_url'),
        migrations.RemoveField(model_name='aiprovidersettings', name='openrouter_default_model'),
        migrations.RemoveField(model_name='aiprovidersettings', name='openai_api_key'),
        migrations.RemoveField(model_name='aiprovidersettings', name='openai_base_url'),
        migrations.RemoveField(model_name='aiprovidersettings', name='openai_default_model'),
        migrations.RemoveField(model_name='aiprovidersettings', name='anthropic_api_key'),
        migrations.RemoveField(model_name='aiprovidersettings', name='anthropic_base_url'),
        migrations.RemoveField(model_name='aiprovidersettings', name='anthropic_default_model'),
    ]
