"""The JSON call log: one line per AI call, for log pipelines (Loki, CloudWatch, Datadog) to parse.

With `AI_LOG_FORMAT=json` the `integrations` loggers write JSON lines (`JsonFormatter`) and every
call adds one line on `integrations.ai.calls`: request id (the vendor's), trace id (when traced),
site, service, provider, models, status, error class, latency, tokens and cost. Never a key, a
prompt, a completion or an error message (messages may quote what was sent).
"""

from __future__ import annotations

import datetime
import json
import logging
from typing import Any

logger = logging.getLogger("integrations.ai.calls")

_on = False


def configure(on: bool) -> None:
    global _on
    _on = on


def enabled() -> bool:
    return _on


def fields_of(outcome: Any) -> dict[str, Any]:
    return {
        "event": "ai_call",
        "request_id": outcome.request_id,
        "trace_id": outcome.trace_id,
        "site": outcome.site_id,
        "service": outcome.service,
        "provider": outcome.provider,
        "model": outcome.requested_model,
        "served_model": outcome.response_model,
        "status": outcome.status,
        "error_class": outcome.error_type,
        "latency_ms": round(outcome.seconds * 1000, 3),
        "input_tokens": outcome.input_tokens,
        "output_tokens": outcome.output_tokens,
        "cost_usd": None if outcome.cost is None else str(outcome.cost),
        "attempts": outcome.attempts,
        "cache_hit": outcome.cache_hit,
    }


def emit(outcome: Any) -> None:
    if _on:
        logger.info("ai call", extra={"ai_call": fields_of(outcome)})


class JsonFormatter(logging.Formatter):
    """A log record as one JSON object per line: time, level, logger, message, and a call's fields."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, tz=datetime.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        data.update(getattr(record, "ai_call", None) or {})
        if record.exc_info:  # as the text format shows it (our errors drop SDK frames: `from None`)
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)
