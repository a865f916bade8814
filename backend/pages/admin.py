"""Page admin with the AI actions a content editor uses: generate meta, generate a block.

Both generate a proposal first and write only what a person accepts (`admin_views`); blocks are
edited with a form per block type and shown rendered, never as raw JSON.
"""

from __future__ import annotations

from django.contrib import admin
from django.template.loader import render_to_string
from django.urls import path, reverse
from django.utils.html import format_html

from tenancy.access import SiteScopedAdminMixin

from . import admin_views, batch_views
from .models import Block, Page


class BlockInline(admin.StackedInline):
    """Blocks listed rendered; their content is edited on the block's own form (link), not as JSON."""

    model = Block
    extra = 0
    fields = ("type", "order", "preview")
    readonly_fields = ("type", "preview")

    def has_add_permission(self, request, obj=None):
        return False  # added through "Add block" / "Generate block", which use the block type's form

    # Blocks are the page's content: whoever may see or change the page sees and reorders its blocks
    # (an editor holds the page permissions only); deleting one still takes delete_block.
    def has_view_permission(self, request, obj=None):
        return super().has_view_permission(request, obj) or request.user.has_perm("pages.view_page")

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) or request.user.has_perm("pages.change_page")

    @admin.display(description="Content")
    def preview(self, obj: Block) -> str:
        if obj is None or not obj.pk:
            return "—"
        html = render_to_string("admin/pages/includes/block_preview.html", {"type": obj.type, "content": obj.content})
        edit = reverse("admin:pages_page_edit_block", args=[obj.page_id, obj.pk])
        return format_html('{}<p><a class="button edit-block" href="{}">Edit this block</a></p>', html, edit)


@admin.register(Page)
class PageAdmin(SiteScopedAdminMixin, admin.ModelAdmin):
    list_display = ("title", "site_name", "slug", "status", "has_meta", "updated_at")
    list_filter = ("status", "site")
    search_fields = ("title", "slug", "body")
    prepopulated_fields = {"slug": ("title",)}
    inlines = [BlockInline]
    actions = ["generate_meta", "generate_meta_batch"]
    change_form_template = "admin/pages/page/change_form.html"
    list_select_related = ("site",)

    @admin.display(description="Site", ordering="site__name")
    def site_name(self, obj: Page) -> str:
        return obj.site.name or obj.site.domain

    @admin.display(boolean=True, description="Meta")
    def has_meta(self, obj: Page) -> bool:
        return not obj.missing_meta

    @admin.action(description="Generate meta with AI (review before saving)", permissions=["change"])
    def generate_meta(self, request, queryset):
        pages = [p for p in queryset.select_related("site")[: admin_views.MAX_PREVIEW_PAGES + 1]
                 if self.has_change_permission(request, p)]
        if len(pages) > admin_views.MAX_PREVIEW_PAGES:
            self.message_user(request, f"Review works on up to {admin_views.MAX_PREVIEW_PAGES} pages at a time: "
                              "select fewer.", "error")
            return None
        rows = admin_views.propose_meta_rows(self, request, pages)
        if not rows:
            return None
        return admin_views.render_meta_preview(self, request, rows)

    @admin.action(description="Generate meta for selected pages (batch)", permissions=["change"])
    def generate_meta_batch(self, request, queryset):
        return batch_views.generate_meta_batch_action(self, request, queryset)

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<int:pk>/generate-block/", wrap(lambda r, pk: admin_views.generate_block_view(self, r, pk)),
                 name="pages_page_generate_block"),
            path("<int:pk>/generate-meta/", wrap(lambda r, pk: admin_views.generate_meta_view(self, r, pk)),
                 name="pages_page_generate_meta"),
            path("meta/accept/", wrap(lambda r: admin_views.accept_meta_view(self, r)),
                 name="pages_page_accept_meta"),
            path("<int:pk>/blocks/add/", wrap(lambda r, pk: admin_views.edit_block_view(self, r, pk)),
                 name="pages_page_add_block"),
            path("<int:pk>/blocks/<int:block_id>/",
                 wrap(lambda r, pk, block_id: admin_views.edit_block_view(self, r, pk, block_id)),
                 name="pages_page_edit_block"),
            *super().get_urls(),
        ]
