"""A site's AI configuration as the gateway sees it: `site_config` (the cached, versioned snapshot of
a site's settings, credentials, mappings and prices; no query when warm), `policy` (what a site
allows), `context` (the current site of a request or a block of code).

May import runtime, ports and providers; the records come from `integrations.ai.ports.store()`.
"""
