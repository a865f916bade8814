"""The HTTP APIs: POST /api/ai/generate/ (`views`), authenticated by API tokens or a staff session; the
OpenAI/Anthropic-dialect `/v1` endpoints with virtual keys (`v1`); the observability endpoints
(`observability_views`: metrics, health).

May import the gateway (`integrations.ai`), `integrations.models`, `tenancy` and the CMS apps'
services it generates into (`pages`).
"""
