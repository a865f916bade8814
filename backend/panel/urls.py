from django.contrib import admin
from django.urls import include, path

from integrations.api import views as api_views
from pages import disclosure

# Branding; no public front end is served here, so the admin's "View site" link is hidden (site_url None).
admin.site.site_header = "Panel AI"
admin.site.site_title = "Panel AI"
admin.site.index_title = "Overview"
admin.site.site_url = None

urlpatterns = [
    path("api/ai/generate/", api_views.generate, name="ai-generate"),
    path("api/pages/<slug:slug>/ai-disclosure/", disclosure.page_disclosure, name="page-ai-disclosure"),
    path("v1/", include("integrations.api.v1.urls")),  # OpenAI/Anthropic dialects with virtual keys
    path("admin/", admin.site.urls),
]

handler400 = api_views.bad_request  # JSON under /api/ (a Host outside ALLOWED_HOSTS included)
handler403 = "tenancy.refusals.permission_denied"  # under /admin/: the refusal in the admin's layout
handler500 = api_views.server_error  # JSON under /api/ and /v1/ (503 while the database is unreachable)
