from django.contrib import admin
from django.urls import path

from integrations import api_views

urlpatterns = [
    path("api/ai/generate/", api_views.generate, name="ai-generate"),
    path("admin/", admin.site.urls),
]
