"""Error reports that cannot carry an API key: the debug page, admin e-mails, anything using Django's reporter.

Django's `SafeExceptionReporterFilter` hides settings named like secrets and the variables of
functions marked `sensitive_variables`, but a key also sits in frames we don't own: the vendor
SDK's request headers (`Authorization: Bearer …`, `x-api-key`), an httpx request, a decrypted
model field. This filter and reporter scrub every frame variable and the exception text of
anything that is a known key (the deployment's, and every site's) or shaped like one.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.views.debug import ExceptionReporter, SafeExceptionReporterFilter

from integrations.ai.providers.errors import redact

logger = logging.getLogger("panel")
SCRUBBED = "********************  (scrubbed: holds an API key)"


def known_secrets() -> set[str]:
    """Every API key this process could have used: the deployment's and each site's (decrypted)."""
    secrets = {
        str(getattr(settings, name, "") or "")
        for name in dir(settings)
        if name.endswith("_API_KEY") and isinstance(getattr(settings, name, None), str)
    }
    try:
        from integrations.models import AIProviderSettings, ProviderCredential

        secrets.update(c.api_key or "" for c in ProviderCredential.objects.exclude(api_key="").only("api_key"))
        secrets.update(r.alert_webhook_secret or "" for r in AIProviderSettings.objects.only("alert_webhook_secret"))
    except Exception:  # the error being reported may be the database itself
        logger.debug("could not read site keys for scrubbing", exc_info=True)
    return {s for s in secrets if len(s) >= 6}


def scrub(value: Any, secrets: set[str]) -> Any:
    """`value` unchanged when its repr holds no secret, else a placeholder."""
    try:
        text = repr(value)
    except Exception:
        return value
    if any(secret in text for secret in secrets) or redact(text) != text:
        return SCRUBBED
    return value


class KeyScrubbingExceptionReporterFilter(SafeExceptionReporterFilter):
    """Django's filter, plus: any frame variable holding a key (known or key-shaped) is replaced."""

    def get_traceback_frame_variables(self, request: Any, tb_frame: Any) -> Any:
        variables = super().get_traceback_frame_variables(request, tb_frame)
        secrets = self._secrets()
        return [(name, scrub(value, secrets)) for name, value in variables]

    def _secrets(self) -> set[str]:
        cached = getattr(self, "_secret_cache", None)
        if cached is None:
            cached = self._secret_cache = known_secrets()
        return cached


class KeyScrubbingExceptionReporter(ExceptionReporter):
    """Django's reporter with the exception text scrubbed too (the frames go through the filter above)."""

    def get_traceback_data(self) -> dict[str, Any]:
        data = super().get_traceback_data()
        secrets = known_secrets()
        for name in ("exception_value",):
            if data.get(name):
                text = str(data[name])
                for secret in secrets:
                    text = text.replace(secret, "[redacted]")
                data[name] = redact(text)
        return data
