"""API tokens get a site, scopes and an expiry; the JSON API's new `integrations.use_ai` permission.

Nobody loses access silently: every token that exists keeps working for what it could do (any site its
user manages, generating and writing into pages, no expiry), and every active staff user who is not a
superuser is granted `use_ai` directly (before this, being staff and a member of the site was enough).
Writing into a page through the API now also needs `pages.change_page`, which editing the page in the
admin always needed; that one is not granted here.
"""

import django.db.models.deletion
from django.db import migrations, models

OLD_TOKEN_SCOPES = ["generate", "pages.write"]


def keep_existing_access(apps, schema_editor):
    APIToken = apps.get_model("integrations", "APIToken")
    APIToken.objects.update(scopes=OLD_TOKEN_SCOPES)
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    User = apps.get_model("auth", "User")
    # post_migrate creates permissions only after every migration ran: make this one now.
    content_type, _ = ContentType.objects.get_or_create(app_label="integrations", model="aiprovidersettings")
    permission, _ = Permission.objects.get_or_create(
        content_type=content_type, codename="use_ai", defaults={"name": "May use AI generation through the API"}
    )
    for user in User.objects.filter(is_staff=True, is_active=True, is_superuser=False):
        user.user_permissions.add(permission)


def revoke(apps, schema_editor):
    Permission = apps.get_model("auth", "Permission")
    Permission.objects.filter(content_type__app_label="integrations", codename="use_ai").delete()


class Migration(migrations.Migration):

    dependencies = [
        ('integrations', '0015_ledger_dead_letter'),
        ('sites', '0002_alter_domain_unique'),
        ('auth', '0012_alter_user_first_name_max_length'),
        ('contenttypes', '0002_remove_content_type_name'),
    ]

    operations = [
        migrations.AlterModelOptions(
            name='aiprovidersettings',
            options={'permissions': [('use_ai', 'May use AI generation through the API')], 'verbose_name': 'AI provider settings', 'verbose_name_plural': 'AI provider settings'},
        ),
        migrations.AddField(
            model_name='apitoken',
            name='expires_at',
            field=models.DateTimeField(blank=True, help_text='Empty: never expires.', null=True),
        ),
        migrations.AddField(
            model_name='apitoken',
            name='scopes',
            field=models.JSONField(blank=True, default=list, help_text='Among: generate, pages.write.'),
        ),
        migrations.AddField(
            model_name='apitoken',
            name='site',
            field=models.ForeignKey(blank=True, help_text='The one site this token works for; empty: every site its user manages.', null=True, on_delete=django.db.models.deletion.CASCADE, related_name='ai_api_tokens', to='sites.site'),
        ),
        migrations.RunPython(keep_existing_access, revoke),
    ]
