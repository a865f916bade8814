"""The layer rules of issue 26 that import-linter cannot express: no module of the gateway imports a
Django model module (django.db.models, any `*.models`), not even inside a function.

import-linter (`.importlinter`, run by bin/test) holds the rest: rooms, layers and circles.
"""

import ast
from pathlib import Path

AI = Path(__file__).resolve().parent.parent / "backend" / "integrations" / "ai"


def model_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        found += [f"{path.relative_to(AI)}:{node.lineno} {n}" for n in names if n == "models" or n.endswith(".models")]
    return found


def test_no_gateway_module_imports_a_model_module():
    offenders = [hit for path in sorted(AI.rglob("*.py")) for hit in model_imports(path)]
    assert offenders == []
