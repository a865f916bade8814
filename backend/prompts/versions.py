"""Prompt versions: content hashes of what a prompt sends, for templates and for the services' built-in prompts.

A template's versions are rows (`PromptTemplateVersion`); the CMS services' own prompts live in code,
so their version is a short hash of their text (system prompt plus the prompt with placeholders).
Provenance records both the same way (name + version), so a change to the meta prompt shows up
on every field generated after it, and staleness can compare "same prompt version" directly.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any


def content_hash(*parts: Any) -> str:
    """A short, stable hash of the parts (JSON-encoded, so dicts and numbers hash the same everywhere)."""
    raw = json.dumps(parts, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:12]


@dataclass(frozen=True)
class BuiltinPrompt:
    """A service's code-defined prompt: its name (`pages.meta`) and the text it sends, versioned by hash."""

    name: str
    system_prompt: str
    template: str  # the user prompt with its placeholders in braces, as the service fills them

    @property
    def version(self) -> str:
        return content_hash(self.system_prompt, self.template)

    @property
    def label(self) -> str:
        return f"{self.name} (built-in, version {self.version})"


BUILTIN_PROMPTS: dict[str, BuiltinPrompt] = {}


def register_builtin(prompt: BuiltinPrompt) -> BuiltinPrompt:
    """Declare a service's prompt so the admin can list it; returns it for use as a module constant."""
    BUILTIN_PROMPTS[prompt.name] = prompt
    return prompt
