"""A site's AI configuration as the gateway sees it: `site_config` (the cached, versioned snapshot of
a site's settings, credentials, mappings and prices; no query when warm), `policy` (what a site
allows), `context` (the current site of a request or a block of code), `callers` (the virtual key a
call runs as, one more governance scope).

May import pricing (the snapshot carries the site's price book), runtime, ports and providers; the
records come from `integrations.ai.ports.store()`.
"""
