"""Page admin with the AI actions a content editor uses: generate meta, generate a block."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse

from integrations.ai.providers.errors import AIProviderError
from tenancy.access import SiteScopedAdminMixin, require_site

from .forms import GenerateBlockForm
from .models import Block, Page
from .services.advanced_ai_service import AdvancedAIService
from .services.ai_service import AIService


class BlockInline(admin.StackedInline):
    model = Block
    extra = 0
    fields = ("type", "order", "content")


@admin.register(Page)
class PageAdmin(SiteScopedAdminMixin, admin.ModelAdmin):
    list_display = ("title", "site", "slug", "status", "has_meta", "updated_at")
    list_filter = ("status", "site")
    search_fields = ("title", "slug", "body")
    prepopulated_fields = {"slug": ("title",)}
    inlines = [BlockInline]
    actions = ["generate_meta"]
    change_form_template = "admin/pages/page/change_form.html"

    @admin.display(boolean=True, description="Meta")
    def has_meta(self, obj: Page) -> bool:
        return not obj.missing_meta

    @admin.action(description="Generate meta title and description with AI", permissions=["change"])
    def generate_meta(self, request, queryset):
        service = AIService()
        done = 0
        for page in queryset.select_related("site"):
            if not self.has_change_permission(request, page):  # the queryset is scoped; this is belt and braces
                continue
            try:
                meta = service.generate_meta_for_page(page)
            except AIProviderError as exc:
                self.message_user(request, f"{page}: not changed — {exc.code}: {exc.message}", messages.ERROR)
                continue
            done += 1
            self.message_user(request, f"{page}: meta title “{meta['meta_title']}”", messages.SUCCESS)
        if done:
            self.message_user(request, f"Generated meta for {done} page(s).", messages.SUCCESS)

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<int:pk>/generate-block/", wrap(self.generate_block_view), name="pages_page_generate_block"),
            *super().get_urls(),
        ]

    def generate_block_view(self, request, pk: int):
        page = get_object_or_404(self.get_queryset(request), pk=pk)
        require_site(request.user, page.site_id)
        if not self.has_change_permission(request, page):  # it writes a block and spends the site's budget
            raise PermissionDenied
        form = GenerateBlockForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                block = AdvancedAIService().generate_block(
                    page, data["type"], data["instructions"], model=data["model"] or None
                )
            except AIProviderError as exc:
                self.message_user(request, f"No block was added — {exc.code}: {exc.message}", messages.ERROR)
            else:
                self.message_user(request, f"Added a {block.type} block.", messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:pages_page_change", args=[page.pk]))
        context = {
            **self.admin_site.each_context(request), "opts": self.model._meta, "original": page,
            "title": f"Generate a block for “{page}”", "form": form,
        }
        return TemplateResponse(request, "admin/pages/page/generate_block.html", context)
