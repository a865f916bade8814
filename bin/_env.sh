# Shared by bin/dev and bin/test: a project venv with the pinned dependencies, and a local .env.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
STAMP=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$STAMP" ]; then
  echo "==> installing pinned dependencies (pyproject.toml)"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
  rm -f .venv/.installed-* && touch "$STAMP"
fi

if [ ! -f .env ]; then
  echo "==> writing a local .env (git-ignored) with a fresh encryption key for API keys"
  key=$(.venv/bin/python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')
  secret=$(.venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(40))')
  printf 'DJANGO_DEBUG=1\nDJANGO_SECRET_KEY=%s\nFIELD_ENCRYPTION_KEY=%s\n' "$secret" "$key" > .env
  chmod 600 .env
fi
mkdir -p var
