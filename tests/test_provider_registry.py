"""Issue 11: a provider is one module plus one registry entry; the provider package is a Django-free leaf
with no import cycle inside the AI layer."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from integrations.ai.gateway.service import AIService
from integrations.ai.ledger import usage
from integrations.ai.providers import registry
from integrations.ai.providers.errors import UnknownProvider, redact
from integrations.ai.providers.model_mapper import ModelMapper
from integrations.models import AIUsage

ROOT = Path(__file__).resolve().parent.parent
AI = ROOT / "backend" / "integrations" / "ai"
TOGETHER_KEY = "tgp_v1_" + "7a" * 20


@pytest.fixture
def together(settings, upstream):
    """The deployment adds Together AI by dotted path and sets its variables; nothing else changes."""
    settings.AI_PROVIDER_SPECS = ["tests.providers.together.SPEC"]
    settings.TOGETHER_API_KEY = TOGETHER_KEY
    settings.TOGETHER_BASE_URL = upstream.openai_base_url  # Together speaks the OpenAI wire format
    return settings


@pytest.mark.django_db
def test_a_provider_added_by_dotted_path_serves_through_the_gateway(together, upstream):
    assert registry.get("together").label == "Together AI"
    result = AIService(provider="together").generate_content("Hello from Together", model="gpt-4o")
    assert (result.provider, result.model) == ("together", "gpt-4o")
    request = upstream.requests[-1]
    assert request.headers["authorization"] == f"Bearer {TOGETHER_KEY}"
    usage.flush()
    assert AIUsage.objects.get().provider == "together"


@pytest.mark.django_db
def test_auto_detection_ai_test_mapper_and_redaction_know_it(together, upstream):
    assert AIService().provider.name == "together"  # the only provider with a key: auto picks it by rank
    out = StringIO()
    call_command("ai_test", "Hi", "--provider", "together", "--model", "gpt-4o", stdout=out)
    assert "together" in out.getvalue()
    assert ModelMapper().normalize_model_name("meta-llama/Llama-3.3-70B", "together") == "meta-llama/Llama-3.3-70B"
    assert TOGETHER_KEY not in redact(f"upstream said: bad key {TOGETHER_KEY}")


def test_the_setting_alone_adds_it_and_removing_it_drops_it(settings):
    assert registry.find("together") is None
    settings.AI_PROVIDER_SPECS = ["tests.providers.together.SPEC"]
    assert registry.find("together") is not None
    settings.AI_PROVIDER_SPECS = []
    assert registry.find("together") is None


def test_a_bad_dotted_path_is_a_clear_error(settings):
    with pytest.raises(UnknownProvider, match=re.escape("cannot import 'tests.providers.nothing.SPEC'")):
        settings.AI_PROVIDER_SPECS = ["tests.providers.nothing.SPEC"]
    settings.AI_PROVIDER_SPECS = []


PROVIDER_MODULES = sorted(p.stem for p in (AI / "providers").glob("*.py") if p.stem != "__init__")


def test_every_provider_module_imports_without_django():
    code = (
        "import sys; sys.path.insert(0, 'backend')\n"
        f"for name in {PROVIDER_MODULES!r}:\n"
        "    __import__('integrations.ai.providers.' + name)\n"
        "print(sorted(m for m in sys.modules if m == 'django' or m.startswith('django.')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"
    assert {"base", "registry", "types", "openai_provider", "anthropic_provider"} <= set(PROVIDER_MODULES)


def module_imports(path: Path) -> set[str]:
    """The integrations.ai modules `path` imports at module level (imports inside functions are lazy)."""
    package = "integrations." + ".".join(path.relative_to(AI.parent).with_suffix("").parts)
    parts = package.split(".")
    found: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.If):  # `if TYPE_CHECKING:` blocks are not run
            continue
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(parts[: len(parts) - node.level] + ([base] if base else []))
            for alias in node.names:
                for candidate in (f"{base}.{alias.name}", base):
                    if candidate.startswith("integrations.ai") and module_path(candidate):
                        found.add(candidate)
                        break
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("integrations.ai") and module_path(a.name)}
    return found - {package}


def module_path(module: str) -> Path | None:
    relative = Path(*module.split(".")[1:])
    for candidate in (AI.parent / relative.with_suffix(".py"), AI.parent / relative / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def test_no_import_cycle_inside_the_ai_layer():
    graph = {}
    for path in AI.rglob("*.py"):
        name = "integrations." + ".".join(path.relative_to(AI.parent).with_suffix("").parts)
        graph[name.removesuffix(".__init__")] = {m.removesuffix(".__init__") for m in module_imports(path)}
    cycles: list[list[str]] = []

    def visit(node: str, trail: list[str]) -> None:
        if node in trail:
            cycles.append([*trail[trail.index(node) :], node])
            return
        for nxt in sorted(graph.get(node, ())):
            visit(nxt, [*trail, node])

    for start in sorted(graph):
        visit(start, [])
    assert cycles == []
    providers = {n for n in graph if n.startswith("integrations.ai.providers")}
    assert all(dep.startswith("integrations.ai.providers") for n in providers for dep in graph[n])


@pytest.mark.django_db
def test_the_admin_form_and_model_choices_offer_it_without_a_migration(together, client):
    from django.urls import reverse

    from integrations.models import AIProviderSettings, ModelMapping, ProviderCredential

    from .factories import AIProviderSettingsFactory, SuperUserFactory

    assert ("together", "Together AI") in ProviderCredential._meta.get_field("provider").choices
    assert ("together", "Together AI") in AIProviderSettings._meta.get_field("provider_type").choices
    assert ("together", "Together AI") in ModelMapping._meta.get_field("provider").choices
    record = AIProviderSettingsFactory()
    client.force_login(SuperUserFactory())
    html = client.get(reverse("admin:integrations_aiprovidersettings_change", args=[record.pk])).content.decode()
    assert '<option value="together">Together AI</option>' in html  # the credential inline's provider choice
    out = StringIO()
    call_command("makemigrations", "integrations", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()
