"""A session-wide check that no API key escapes (issue 10): every HTML/JSON response the suite's
requests produce, and every test's captured output and log lines, are scanned for key-shaped text.

Installed as a test-only middleware (settings_test) and a report hook (conftest); a leak fails the
test that caused it, naming the place but not the key.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import Any

# The shapes of every key the suite uses (tests/conftest.py EMULATED_KEYS, the test modules' keys,
# tests/providers/together.py) — a real vendor key has the same prefixes.
KEY_SHAPES = re.compile(r"sk-(?:or-v1|proj|ant-api03)-[A-Za-z0-9_\-]{16,}|tgp_v1_[A-Za-z0-9_\-]{16,}")

_lock = threading.Lock()
leaks: list[str] = []


def scan(text: str, where: str) -> None:
    found = KEY_SHAPES.search(text)
    if found:
        with _lock:
            leaks.append(f"{where}: {found.group()[:10]}…")


def take() -> list[str]:
    with _lock:
        taken = list(leaks)
        leaks.clear()
    return taken


class LeakCheckMiddleware:
    """Scans every non-streaming response body the app sends during the tests."""

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        response = self.get_response(request)
        if not getattr(response, "streaming", False):
            scan(response.content.decode("utf-8", "replace"), f"{request.method} {request.path}")
        return response
