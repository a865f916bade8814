"""The HTTP APIs: POST /api/ai/generate/ (`views`), authenticated by API tokens or a staff session; the
OpenAI/Anthropic-dialect `/v1` endpoints with virtual keys (`v1`); the observability endpoints
(`observability_views`: metrics, health).

May import the gateway (`integrations.ai`), `integrations.models` and `tenancy`; never the CMS apps:
what it may write into (a page's field) is registered in `targets` by the app that owns it.
"""
