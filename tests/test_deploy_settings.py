"""Deployment settings from the environment (issue 10): the README's production environment passes
`manage.py check --deploy`, HTTPS is the default outside DEBUG, and every variable in the README's
environment table is really read by settings.py.
"""

from __future__ import annotations

import os
import re
import runpy
import secrets
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
SETTINGS = ROOT / "backend" / "panel" / "settings.py"
REQUIRED = {"DJANGO_SECRET_KEY": "probe-secret-" + "s" * 50, "FIELD_ENCRYPTION_KEY": Fernet.generate_key().decode()}


def section(heading: str) -> str:
    """The README text under a heading, up to the next heading of the same or a higher level."""
    level = heading.split(" ")[0]
    start = README.index(heading + "\n") + len(heading)
    ends = [m.start() for m in re.finditer(rf"^#{{1,{len(level)}}} ", README[start:], re.MULTILINE)]
    return README[start : start + ends[0]] if ends else README[start:]


def table_variables() -> list[str]:
    """Every variable named in the first column of the Configuration section's table."""
    rows = [line for line in section("## Configuration").splitlines() if line.startswith("| `")]
    return [name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]*)`", row.split("|")[1])]


def production_environment() -> dict[str, str]:
    """The README's documented production environment, placeholders filled with fresh values."""
    block = re.search(r"```sh\n(.*?)```", section("### Production environment"), re.DOTALL)[1]
    fill = {"DJANGO_SECRET_KEY": secrets.token_urlsafe(50), "FIELD_ENCRYPTION_KEY": Fernet.generate_key().decode()}
    env = {}
    for line in block.strip().splitlines():
        name, value = line.split("=", 1)
        env[name] = fill.get(name, re.sub(r"<[^>]*>", "placeholder", value))
    return env


def clean_environ(extra: dict[str, str]) -> dict[str, str]:
    """The process environment without anything the README documents (so a shell or CI value can't leak in)."""
    drop = set(table_variables()) | {"DJANGO_SETTINGS_MODULE", "PANEL_ENV_FILE"}
    return {**{k: v for k, v in os.environ.items() if k not in drop and not k.startswith("DJANGO_")}, **extra}


def run_check_deploy(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=clean_environ({**env, "DJANGO_SETTINGS_MODULE": "panel.settings", "PANEL_ENV_FILE": "/nonexistent"}),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_the_documented_production_environment():
    env = production_environment()
    assert env["DJANGO_DEBUG"] == "0" and "DJANGO_ALLOWED_HOSTS" in env
    result = run_check_deploy(env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "System check identified no issues" in result.stdout, result.stdout + result.stderr


def test_check_deploy_without_the_hsts_switches_warns_about_them_only():
    env = {k: v for k, v in production_environment().items() if "HSTS_INCLUDE" not in k and "PRELOAD" not in k}
    result = run_check_deploy(env)
    warnings = set(re.findall(r"\((security\.W\d+)\)", result.stderr))
    assert warnings == {"security.W005", "security.W021"}, result.stderr[-3000:]


@pytest.fixture
def load_settings(monkeypatch, tmp_path):
    """Run settings.py afresh with exactly the given environment (plus the two required keys)."""
    empty_env_file = tmp_path / "empty.env"
    empty_env_file.write_text("")

    def load(**variables: str) -> dict[str, Any]:
        for name in [*table_variables(), *[k for k in os.environ if k.startswith("DJANGO_")]]:
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("PANEL_ENV_FILE", str(empty_env_file))
        for name, value in {**REQUIRED, **variables}.items():
            monkeypatch.setenv(name, value)
        namespace = runpy.run_path(str(SETTINGS), run_name="panel_settings_probe")
        return {k: v for k, v in namespace.items() if k.isupper()}

    return load


def test_https_is_the_default_when_debug_is_off(load_settings):
    prod = load_settings(DJANGO_DEBUG="0")
    assert prod["SECURE_SSL_REDIRECT"] and prod["SESSION_COOKIE_SECURE"] and prod["CSRF_COOKIE_SECURE"]
    assert prod["SECURE_HSTS_SECONDS"] == 31_536_000
    dev = load_settings(DJANGO_DEBUG="1")  # what bin/dev writes: plain HTTP keeps working
    assert not (dev["SECURE_SSL_REDIRECT"] or dev["SESSION_COOKIE_SECURE"] or dev["CSRF_COOKIE_SECURE"])
    assert dev["SECURE_HSTS_SECONDS"] == 0


def test_each_deploy_setting_comes_from_the_environment(load_settings):
    loaded = load_settings(
        DJANGO_SECURE_SSL_REDIRECT="0",
        DJANGO_SECURE_HSTS_SECONDS="600",
        DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS="1",
        DJANGO_SECURE_HSTS_PRELOAD="true",
        DJANGO_SESSION_COOKIE_SECURE="no",
        DJANGO_CSRF_COOKIE_SECURE="0",
        DJANGO_CSRF_TRUSTED_ORIGINS="https://a.example,https://b.example",
        DJANGO_SECURE_PROXY_SSL_HEADER="HTTP_X_FORWARDED_PROTO,https",
    )
    assert (loaded["SECURE_SSL_REDIRECT"], loaded["SESSION_COOKIE_SECURE"], loaded["CSRF_COOKIE_SECURE"]) == (
        False,
        False,
        False,
    )
    assert (loaded["SECURE_HSTS_SECONDS"], loaded["SECURE_HSTS_INCLUDE_SUBDOMAINS"], loaded["SECURE_HSTS_PRELOAD"]) == (
        600,
        True,
        True,
    )
    assert loaded["CSRF_TRUSTED_ORIGINS"] == ["https://a.example", "https://b.example"]
    assert loaded["SECURE_PROXY_SSL_HEADER"] == ("HTTP_X_FORWARDED_PROTO", "https")


@pytest.mark.parametrize("value", ["X-Forwarded-Proto", "HTTP_X_FORWARDED_PROTO", "X_FORWARDED_PROTO,https"])
def test_a_malformed_proxy_header_is_a_clear_startup_error(load_settings, value):
    with pytest.raises(ImproperlyConfigured, match="DJANGO_SECURE_PROXY_SSL_HEADER must be"):
        load_settings(DJANGO_SECURE_PROXY_SSL_HEADER=value)


def test_the_readme_table_lists_the_deploy_variables():
    listed = set(table_variables())
    for name in (
        "AI_API_RATE_LIMIT",
        "DJANGO_SECURE_SSL_REDIRECT",
        "DJANGO_SECURE_HSTS_SECONDS",
        "DJANGO_SESSION_COOKIE_SECURE",
        "DJANGO_CSRF_COOKIE_SECURE",
        "DJANGO_CSRF_TRUSTED_ORIGINS",
        "DJANGO_SECURE_PROXY_SSL_HEADER",
        "AI_SETTINGS_CHECK_INTERVAL",
    ):
        assert name in listed


PROBES = ("probe-value", "7", "1", "0")


@pytest.mark.parametrize("name", table_variables())
def test_every_variable_in_the_readme_table_is_read(load_settings, name):
    """Setting the variable changes some Django setting (or is refused at startup): settings.py reads it.

    Probe values of several shapes, so a string, a number and a boolean each find one that differs
    from the default; a new row in the README is covered without editing this test.
    """
    baseline = load_settings()
    for value in PROBES:
        try:
            with warnings.catch_warnings():  # django-environ warns about a URL it cannot read
                warnings.simplefilter("ignore")
                changed = load_settings(**{name: value}) != baseline
        except Exception:  # the baseline loads, so the variable made this load fail: it was read
            changed = True
        if changed:
            return
    pytest.fail(f"{name} is listed in the README's environment table but settings.py does not read it")


def test_the_check_interval_reaches_the_ai_layer(load_settings):
    assert load_settings(AI_SETTINGS_CHECK_INTERVAL="2.5")["AI_SETTINGS_CHECK_INTERVAL"] == 2.5


def test_kept_database_connections_are_health_checked(load_settings):
    """After a PostgreSQL restart a kept connection is stale: Django checks it before reuse (issue 25)."""
    assert load_settings()["DATABASES"]["default"]["CONN_HEALTH_CHECKS"] is True
    assert load_settings(DATABASE_CONN_HEALTH_CHECKS="0")["DATABASES"]["default"]["CONN_HEALTH_CHECKS"] is False
