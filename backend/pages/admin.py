"""Page admin with the AI actions a content editor uses: generate meta, generate a block.

Both generate a proposal first and write only what a person accepts (`admin_views`); blocks are
edited with a form per block type and shown rendered, never as raw JSON.
"""

from __future__ import annotations

from django.contrib import admin
from django.template.loader import render_to_string
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from integrations.ai.governance.money import usd
from tenancy.access import SiteScopedAdminMixin, site_label

from . import admin_views, batch_views, provenance, search_views, staleness, translation_views
from .models import Block, GlossaryTerm, Page, SiteLanguage


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
        html = render_to_string(
            "admin/pages/includes/block_preview.html",
            {"type": obj.type, "content": obj.content, "site_id": obj.page.site_id},
        )
        edit = reverse("admin:pages_page_edit_block", args=[obj.page_id, obj.pk])
        badge = render_to_string(
            "admin/pages/includes/provenance_badge.html",
            {"row": obj.provenance.order_by("-accepted_at", "-id").first()},
        )
        badge_html = mark_safe(badge)  # noqa: S308 - rendered by an autoescaping template
        return format_html(
            '{}<p>{}</p><p><a class="button edit-block" href="{}">Edit this block</a></p>', html, badge_html, edit
        )


@admin.register(Page)
class PageAdmin(SiteScopedAdminMixin, admin.ModelAdmin):
    list_display = ("title", "site_name", "slug", "status", "has_meta", "ai_stale", "translation_status", "updated_at")
    list_filter = ("status", "site")
    search_fields = ("title", "slug", "body")
    prepopulated_fields = {"slug": ("title",)}
    inlines = [BlockInline]
    actions = ["generate_meta", "generate_meta_batch", "regenerate_stale_meta", "regenerate_stale_blocks"]
    change_form_template = "admin/pages/page/change_form.html"
    change_list_template = "admin/pages/page/change_list.html"
    list_select_related = ("site", "translation_of")
    readonly_fields = ("ai_provenance", "ai_spend", "translations", "related_pages")

    def get_form(self, request, obj=None, change=False, **kwargs):
        """Each AI-written meta field gets its provenance (and the AI-generated marker) beside it."""
        form = super().get_form(request, obj, change=change, **kwargs)
        if obj is not None and obj.pk:
            rows = provenance.current(obj)
            for name in provenance.META_FIELDS:
                if name in rows and name in form.base_fields:
                    badge = render_to_string("admin/pages/includes/provenance_badge.html", {"row": rows[name]})
                    form.base_fields[name].help_text = mark_safe(badge)  # noqa: S308 - autoescaped template
        return form

    @admin.display(description="AI spend")
    def ai_spend(self, obj: Page) -> str:
        """What AI calls for this page cost (proposals included, accepted or not), from the usage ledger."""
        if obj is None or not obj.pk:
            return "—"
        from django.contrib.contenttypes.models import ContentType
        from django.db.models import Count, Sum

        from integrations.models import AIUsage

        content_type = ContentType.objects.get_for_model(Page)
        totals = AIUsage.objects.filter(content_type=content_type, object_id=obj.pk).aggregate(
            calls=Count("id"), cost=Sum("cost"), tokens=Sum("total_tokens")
        )
        if not totals["calls"]:
            return "No AI calls for this page yet."
        cost = usd(totals["cost"]) if totals["cost"] is not None else "cost not known"
        text = f"{cost} over {totals['calls']} call(s), {totals['tokens'] or 0} tokens"
        url = reverse("admin:integrations_aiusage_changelist") + f"?content={content_type.pk}:{obj.pk}"
        return format_html('<span class="ai-spend">{}</span> · <a href="{}">usage rows</a>', text, url)  # its admin
        # checks the usage permission and the site again

    @admin.display(description="AI provenance")
    def ai_provenance(self, obj: Page) -> str:
        """Every AI-written field and block of the page, newest first, with what produced it."""
        if obj is None or not obj.pk:
            return "—"
        rows = list(obj.provenance.select_related("accepted_by"))
        return render_to_string("admin/pages/includes/provenance_list.html", {"rows": rows})

    @admin.display(description="Translations")
    def translations(self, obj: Page) -> str:
        """The page's language links: its source (for a translation) or its translations and whether stale."""
        if obj is None or not obj.pk:
            return "—"
        return render_to_string(
            "admin/pages/includes/translations.html",
            {
                "source": getattr(obj, "translation_of", None) if hasattr(obj, "translation_of") else None,
                "translations": translation_views.translations_of(obj),
            },
        )

    @admin.display(description="Related pages")
    def related_pages(self, obj: Page) -> str:
        """The pages of this site nearest in meaning (from the stored vectors; no AI call)."""
        if obj is None or not obj.pk:
            return "—"
        return render_to_string("admin/pages/includes/related_pages.html", {"hits": search_views.related_to(obj)})

    @admin.display(description="Translation")
    def translation_status(self, obj: Page) -> str:
        """A translation: its language, and "translation stale" when its source changed since."""
        link = getattr(obj, "translation_of", None) if hasattr(obj, "translation_of") else None
        if link is None:
            return "—"
        from .translation import stale_units

        stale = stale_units(link)
        if stale:
            return format_html(
                '{} · <span class="ai-stale translation-stale" title="{}">translation stale ({})</span>',
                link.language,
                ", ".join(sorted(stale)),
                len(stale),
            )
        return link.language

    def get_queryset(self, request):
        return search_views.by_meaning(self, request, super().get_queryset(request))

    def get_changelist(self, request, **kwargs):
        return search_views.MeaningChangeList

    def changelist_view(self, request, extra_context=None):
        search_views.take_meaning_query(self, request)
        return super().changelist_view(request, {**(extra_context or {}), "meaning": getattr(request, "meaning", "")})

    @admin.display(description="Site", ordering="site__name")
    def site_name(self, obj: Page) -> str:
        return site_label(obj.site)

    @admin.display(description="AI content")
    def ai_stale(self, obj: Page) -> str:
        """Flag pages whose AI-written fields were generated from older text or an older prompt."""
        reasons = staleness.stale_reasons(obj)
        if not reasons:
            return "—"
        return format_html(
            '<span class="ai-stale" title="{}">stale ({})</span>',
            "; ".join(sorted(set(reasons.values()))),
            len(reasons),
        )

    @admin.action(description="Regenerate stale AI meta (estimate, then review)", permissions=["change"])
    def regenerate_stale_meta(self, request, queryset):
        """Only pages whose AI meta is stale: an estimate first, then proposals to review and accept."""
        return admin_views.regenerate_stale_meta(self, request, queryset)

    @admin.action(description="Regenerate stale AI blocks (estimate, then review)", permissions=["change"])
    def regenerate_stale_blocks(self, request, queryset):
        """Only blocks still as the AI wrote them whose page text or block prompt changed; estimate, then review."""
        return admin_views.regenerate_stale_blocks(self, request, queryset)

    @admin.display(boolean=True, description="Meta")
    def has_meta(self, obj: Page) -> bool:
        return not obj.missing_meta

    @admin.action(description="Generate meta with AI (review before saving)", permissions=["change"])
    def generate_meta(self, request, queryset):
        pages = [
            p
            for p in queryset.select_related("site")[: admin_views.MAX_PREVIEW_PAGES + 1]
            if self.has_change_permission(request, p)
        ]
        if len(pages) > admin_views.MAX_PREVIEW_PAGES:
            self.message_user(
                request,
                f"Review works on up to {admin_views.MAX_PREVIEW_PAGES} pages at a time: select fewer.",
                "error",
            )
            return None
        rows = admin_views.propose_meta_rows(self, request, pages)
        if not rows:
            return None
        return admin_views.meta_review_redirect(rows)  # redirect after the paid POST

    @admin.action(description="Generate meta for selected pages (batch)", permissions=["change"])
    def generate_meta_batch(self, request, queryset):
        return batch_views.generate_meta_batch_action(self, request, queryset)

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path(
                "<int:pk>/generate-block/",
                wrap(lambda r, pk: admin_views.generate_block_view(self, r, pk)),
                name="pages_page_generate_block",
            ),
            path(
                "<int:pk>/generate-block/stream/",
                wrap(lambda r, pk: admin_views.stream_block_view(self, r, pk)),
                name="pages_page_generate_block_stream",
            ),
            path(
                "<int:pk>/generate-meta/",
                wrap(lambda r, pk: admin_views.generate_meta_view(self, r, pk)),
                name="pages_page_generate_meta",
            ),
            path(
                "<int:pk>/generate-meta/stream/",
                wrap(lambda r, pk: admin_views.stream_meta_view(self, r, pk)),
                name="pages_page_generate_meta_stream",
            ),
            path(
                "<int:pk>/translate/",
                wrap(lambda r, pk: translation_views.translate_view(self, r, pk)),
                name="pages_page_translate",
            ),
            path(
                "<int:pk>/translate/stream/",
                wrap(lambda r, pk: translation_views.translate_stream_view(self, r, pk)),
                name="pages_page_translate_stream",
            ),
            path(
                "translation/accept/",
                wrap(lambda r: translation_views.accept_translation_view(self, r)),
                name="pages_page_accept_translation",
            ),
            path("meta/accept/", wrap(lambda r: admin_views.accept_meta_view(self, r)), name="pages_page_accept_meta"),
            path("meta/review/", wrap(lambda r: admin_views.review_meta_view(self, r)), name="pages_page_review_meta"),
            path(
                "blocks/accept/",
                wrap(lambda r: admin_views.accept_blocks_view(self, r)),
                name="pages_page_accept_blocks",
            ),
            path(
                "<int:pk>/blocks/add/",
                wrap(lambda r, pk: admin_views.edit_block_view(self, r, pk)),
                name="pages_page_add_block",
            ),
            path(
                "<int:pk>/blocks/<int:block_id>/",
                wrap(lambda r, pk, block_id: admin_views.edit_block_view(self, r, pk, block_id)),
                name="pages_page_edit_block",
            ),
            *super().get_urls(),
        ]


@admin.register(SiteLanguage)
class SiteLanguageAdmin(SiteScopedAdminMixin, admin.ModelAdmin):
    """The languages a site publishes in: its default one (what its pages are written in) and its translations."""

    list_display = ("name", "code", "site", "is_default")
    list_filter = ("site",)


@admin.register(GlossaryTerm)
class GlossaryTermAdmin(SiteScopedAdminMixin, admin.ModelAdmin):
    """Terms a site's translations keep as they are or translate one fixed way (in the prompt, checked after)."""

    list_display = ("term", "translation", "language", "site")
    list_filter = ("site",)
    search_fields = ("term", "translation")
