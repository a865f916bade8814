"""The image library admin: upload (checked before anything is stored), list with thumbnails, alt text with AI.

Site-scoped like every admin (`SiteScopedAdminMixin`): a site admin lists, uploads into and changes
only their own sites' images, and the site is required (no "global" images). "No alt text" is a
filter of the list: the accessibility to-do.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from integrations.ai.governance.money import usd
from tenancy.access import SiteScopedAdminMixin, site_ids_for, site_label

from . import admin_views
from .models import Image
from .uploads import check_upload, read_all, thumbnail_of


class ImageForm(forms.ModelForm):
    """The file is read with Pillow in `clean_file`: a bad upload is a field error and nothing is stored."""

    class Meta:
        model = Image
        fields = ("site", "title", "file", "alt_text")
        widgets = {
            "file": forms.FileInput(attrs={"accept": "image/png,image/jpeg,image/gif,image/webp"}),  # no storage path
            "alt_text": forms.Textarea(attrs={"rows": 2, "cols": 80, "maxlength": 250}),
        }

    def clean_file(self):
        upload = self.cleaned_data.get("file")
        if isinstance(upload, UploadedFile):  # a new file (not the stored one kept on a change)
            self.checked = check_upload(upload)
        return upload


class AltTextFilter(admin.SimpleListFilter):
    """The accessibility to-do (no alt text) and the AI states; it filters the already site-scoped rows."""

    title = "alt text"
    parameter_name = "alt"

    def lookups(self, request, model_admin):
        return [
            ("missing", "No alt text (to do)"),
            ("proposal", "Proposal to review"),
            ("ai", "AI-generated"),
            ("person", "Written by a person"),
        ]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "missing":
            return queryset.filter(alt_text="")
        if value == "proposal":
            return queryset.exclude(alt_proposal="")
        if value == "ai":
            return queryset.filter(alt_text_ai=True).exclude(alt_text="")
        if value == "person":
            return queryset.filter(alt_text_ai=False).exclude(alt_text="")
        return queryset


@admin.register(Image)
class ImageAdmin(SiteScopedAdminMixin, admin.ModelAdmin):
    form = ImageForm
    list_display = ("thumb", "title", "site", "alt_status", "dimensions", "created_at")
    list_display_links = ("thumb", "title")
    list_filter = (AltTextFilter, "site")
    search_fields = ("title", "alt_text")
    list_select_related = ("site",)
    readonly_fields = ("preview", "dimensions", "alt_marker", "alt_proposal", "alt_provenance", "ai_spend")
    actions = ["generate_alt_text_batch", "review_alt_proposals"]
    change_form_template = "admin/images/image/change_form.html"

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return [(None, {"fields": ("site", "title", "file", "alt_text")})]
        return [
            (None, {"fields": ("site_name", "title", "preview", "file", "dimensions")}),
            ("Alt text", {"fields": ("alt_text", "alt_marker", "alt_proposal")}),
            ("AI", {"fields": ("alt_provenance", "ai_spend")}),
        ]

    def get_readonly_fields(self, request, obj=None):
        """An image stays in its site: blocks of that site's pages may show it."""
        fields = tuple(super().get_readonly_fields(request, obj))
        return (*fields, "site", "site_name") if obj is not None else fields

    @admin.display(description="Site")
    def site_name(self, obj: Image) -> str:
        return site_label(obj.site)

    def get_changeform_initial_data(self, request):
        """A person who manages one site uploads into it without choosing."""
        initial = super().get_changeform_initial_data(request)
        ids = site_ids_for(request.user)
        if ids is not None and len(ids) == 1:
            initial.setdefault("site", next(iter(ids)))
        return initial

    def save_model(self, request, obj, form, change):
        """Store the file and its thumbnail together: if either fails, neither stays (nor the row)."""
        checked = getattr(form, "checked", None)
        if checked is None:
            super().save_model(request, obj, form, change)
            return
        upload = form.cleaned_data["file"]
        obj.media_type, obj.width, obj.height, obj.size_bytes = (
            checked.media_type,
            checked.width,
            checked.height,
            checked.size_bytes,
        )
        if not change:
            obj.uploaded_by = request.user
        stored: list = []
        try:
            with transaction.atomic():
                obj.file.save(f"upload.{checked.extension}", upload, save=False)
                stored.append(obj.file.name)
                obj.thumbnail.save("thumbnail.png", thumbnail_of(read_all(obj.file)), save=False)
                stored.append(obj.thumbnail.name)
                super().save_model(request, obj, form, change)
        except Exception:
            for name in stored:
                obj.file.storage.delete(name)
            raise

    @admin.display(description="Image")
    def thumb(self, obj: Image) -> str:
        if not obj.pk:
            return "—"
        return format_html(
            '<img src="{}" alt="{}" class="image-thumb" style="max-height:60px;max-width:90px">',
            reverse("admin:images_image_thumbnail", args=[obj.pk]),
            obj.alt_text,
        )

    @admin.display(description="Preview")
    def preview(self, obj: Image) -> str:
        if not obj or not obj.pk:
            return "—"
        return format_html(
            '<a href="{}"><img src="{}" alt="{}" class="image-preview"></a>',
            reverse("admin:images_image_file", args=[obj.pk]),
            reverse("admin:images_image_thumbnail", args=[obj.pk]),
            obj.alt_text,
        )

    @admin.display(description="Size")
    def dimensions(self, obj: Image) -> str:
        return f"{obj.width}x{obj.height} px, {obj.size_bytes:,} bytes ({obj.media_type})" if obj.pk else "—"

    @admin.display(description="Alt text")
    def alt_status(self, obj: Image) -> str:
        if obj.missing_alt:
            label = "no alt text (to do)"
            if obj.alt_proposal:
                label += " · proposal to review"
            return format_html('<span class="alt-missing">{}</span>', label)
        marker = mark_safe(' <strong class="ai-marker">AI</strong>') if obj.alt_text_ai else ""
        return format_html("{}{}", obj.alt_text, marker)

    @admin.display(description="Status")
    def alt_marker(self, obj: Image) -> str:
        if obj.missing_alt:
            return "No alt text yet."
        if obj.alt_text_ai:
            return mark_safe('<strong class="ai-marker">AI-generated</strong> (accepted by a person)')
        return "Written by a person."

    @admin.display(description="Proposal waiting")
    def alt_proposal(self, obj: Image) -> str:
        if not obj.alt_proposal:
            return "—"
        url = reverse("admin:images_image_review_alt") + f"?ids={obj.pk}"
        return format_html('“{}” · <a href="{}">review</a>', obj.alt_proposal, url)

    @admin.display(description="Alt text provenance")
    def alt_provenance(self, obj: Image) -> str:
        rows = list(obj.alt_provenance.select_related("accepted_by", "context_page")) if obj.pk else []
        return render_to_string("admin/images/includes/alt_provenance.html", {"rows": rows})

    @admin.display(description="AI spend")
    def ai_spend(self, obj: Image) -> str:
        """What AI calls for this image cost (proposals included, accepted or not), from the usage ledger."""
        from django.contrib.contenttypes.models import ContentType
        from django.db.models import Count, Sum

        from integrations.models import AIUsage

        if not obj.pk:
            return "—"
        content_type = ContentType.objects.get_for_model(Image)
        totals = AIUsage.objects.filter(content_type=content_type, object_id=obj.pk, site_id=obj.site_id).aggregate(
            calls=Count("id"), cost=Sum("cost"), tokens=Sum("total_tokens")
        )
        if not totals["calls"]:
            return "No AI calls for this image yet."
        cost = usd(totals["cost"]) if totals["cost"] is not None else "cost not known"
        return format_html(
            '<span class="ai-spend">{} over {} call(s), {} tokens</span>', cost, totals["calls"], totals["tokens"] or 0
        )

    @admin.action(description="Generate alt text with AI (batch: estimate, then review)", permissions=["change"])
    def generate_alt_text_batch(self, request, queryset):
        return admin_views.batch_action(self, request, queryset)

    @admin.action(description="Review proposed alt text", permissions=["change"])
    def review_alt_proposals(self, request, queryset):
        from django.http import HttpResponseRedirect

        ids = list(queryset.exclude(alt_proposal="").values_list("pk", flat=True)[: admin_views.MAX_REVIEW])
        if not ids:
            self.message_user(request, "None of the selected images has a proposal to review.", "warning")
            return None
        return HttpResponseRedirect(reverse("admin:images_image_review_alt") + "?ids=" + ",".join(map(str, ids)))

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<int:pk>/file/", wrap(lambda r, pk: admin_views.file_view(self, r, pk)), name="images_image_file"),
            path(
                "<int:pk>/thumbnail/",
                wrap(lambda r, pk: admin_views.file_view(self, r, pk, "thumbnail")),
                name="images_image_thumbnail",
            ),
            path(
                "<int:pk>/generate-alt/",
                wrap(lambda r, pk: admin_views.generate_view(self, r, pk)),
                name="images_image_generate_alt",
            ),
            path("alt/review/", wrap(lambda r: admin_views.review_view(self, r)), name="images_image_review_alt"),
            *super().get_urls(),
        ]
