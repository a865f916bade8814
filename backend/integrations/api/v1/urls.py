"""The `/v1` routes (mounted at `v1/` by panel.urls)."""

from django.urls import path, re_path

from . import views

urlpatterns = [
    path("chat/completions", views.chat_completions, name="v1-chat-completions"),
    path("messages", views.messages, name="v1-messages"),
    path("messages/count_tokens", views.count_tokens, name="v1-count-tokens"),
    path("responses", views.responses, name="v1-responses"),
    path("embeddings", views.embeddings, name="v1-embeddings"),
    path("models", views.models, name="v1-models"),
    path("models/<path:model>", views.models, name="v1-model"),
    re_path(r"", views.unknown_route, name="v1-unknown"),  # any other path: a 404 in the client's dialect, never HTML
]
