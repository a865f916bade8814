"""Batch jobs: the runner (`runner`: BatchJob rows run by Celery tasks or in-process, checkpoints,
retries), the pre-flight cost estimate (`estimate`) and the jobs' admin (`admin`).

May import `integrations.models`, the gateway (`integrations.ai`), `integrations.admin` (labels) and
`tenancy`. Job kinds are registered by the apps that own them (`pages.tasks`, `prompts.tasks`).
"""
