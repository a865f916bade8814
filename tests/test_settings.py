"""Deployment settings: a missing encryption key stops startup with a message saying what to do."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def start(env_changes: dict[str, str | None]) -> subprocess.CompletedProcess:
    dropped = ("FIELD_ENCRYPTION_KEY", "DJANGO_SETTINGS_MODULE", "DJANGO_SECRET_KEY")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update({k: v for k, v in env_changes.items() if v is not None})
    code = "import sys; sys.path.insert(0, 'backend'); import django; django.setup(); print('started')"
    # cwd without a .env, so a developer's local key cannot satisfy the check
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "panel.settings", "PANEL_ENV_FILE": "/nonexistent"},
        capture_output=True,
        text=True,
    )


def test_missing_field_encryption_key_is_a_clear_startup_error():
    result = start({"DJANGO_SECRET_KEY": "x" * 50})
    assert result.returncode != 0
    assert "FIELD_ENCRYPTION_KEY is not set" in result.stderr
    assert "Fernet.generate_key()" in result.stderr


def test_missing_secret_key_outside_debug_is_a_clear_startup_error():
    result = start({"FIELD_ENCRYPTION_KEY": "UKwl6rPBD3jYq6U0HNbergTqGWe2zWg9x7bmyrBIEP8=", "DJANGO_DEBUG": "0"})
    assert result.returncode != 0 and "DJANGO_SECRET_KEY is not set" in result.stderr


def test_starts_with_both_keys():
    result = start(
        {"FIELD_ENCRYPTION_KEY": "UKwl6rPBD3jYq6U0HNbergTqGWe2zWg9x7bmyrBIEP8=", "DJANGO_SECRET_KEY": "x" * 50}
    )
    assert result.stdout.strip() == "started", result.stderr[-500:]
