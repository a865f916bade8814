"""Per-site guardrails run by the gateway before and after each call (Django-free).

One module per guardrail (`pii`, `injection`, `moderation`, `banned_terms`), their settings as the site
snapshot carries them (`settings`), what one did (`actions`), their typed refusals (`errors`), and the
`registry` the gateway runs: `before(settings, request)` on the validated request, `after(...)` on the
answer. The banned-terms check runs at review time (the pages' review screens), never blocking.
"""
