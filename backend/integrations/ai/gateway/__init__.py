"""The gateway's pipeline: what CMS code calls (`service.AIService`: prepare -> cache -> admission ->
provider chain -> ledger), which provider serves a call for which site with whose key (`factory`),
what providers report to and wait on (`hooks`), and the shared response cache (`response_cache`),
structured output (`structured`: generate_json) and embeddings (`embeddings`: embed).

May import every other room of `integrations.ai` (governance, ledger, sites, runtime, ports,
providers); nothing of the Django side (models, admin, api, usage, jobs) or of `pages`/`prompts`.
"""
