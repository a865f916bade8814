"""A heuristic prompt-injection check on content pulled into prompts (page text, tool results, user input).

It reads the conversation's user and tool messages, never the system prompt the site wrote, for
the common shapes of an attempt to take over the model: "ignore (all) previous instructions" and
its variants, "you are now ...", requests to reveal the system prompt, and role-override markers
(chat-template tokens such as `<|im_start|>`, `[INST]`, `<<SYS>>`, a line opening with `system:`).
A heuristic: it catches the copy-pasted attacks, not a determined one; the site chooses whether a
match is only recorded (`flag`) or refuses the call (`refuse`).
"""

from __future__ import annotations

import re

_FLAGS = re.IGNORECASE | re.MULTILINE

PATTERNS: dict[str, re.Pattern[str]] = {
    "ignore_instructions": re.compile(
        r"\b(?:ignore|disregard|forget|override|skip)\b[\w\s,'-]{0,30}?"
        r"\b(?:previous|prior|above|earlier|preceding|all|any|your|the|system)\b[\w\s,'-]{0,20}?"
        r"\b(?:instructions?|prompts?|rules|directions|guidelines|context|messages?)\b",
        _FLAGS,
    ),
    "new_instructions": re.compile(r"\b(?:new|updated|real)\s+(?:system\s+)?instructions?\s*:", _FLAGS),
    "role_reassignment": re.compile(
        r"\byou\s+are\s+now\b|\bfrom\s+now\s+on,?\s+you\s+(?:are|will|must)\b|\bpretend\s+(?:to\s+be|you\s+are)\b",
        _FLAGS,
    ),
    "reveal_system_prompt": re.compile(
        r"\b(?:reveal|print|show|repeat|output|leak)\b[\w\s,'-]{0,30}?\b(?:system\s+prompt|hidden\s+instructions?)\b",
        _FLAGS,
    ),
    "role_marker": re.compile(
        r"<\|\s*(?:im_start|im_end|system|assistant|endoftext)\s*\|>"
        r"|\[/?(?:INST|SYS)\]|<<\s*/?SYS\s*>>"
        r"|^\s*(?:#{1,3}\s*)?(?:system|assistant|developer)\s*:"
        r"|</?\s*(?:system|instructions)\s*>",
        _FLAGS,
    ),
}


def matches(text: str) -> list[str]:
    """The names of the patterns `text` matches, in the order of `PATTERNS` (empty: nothing found)."""
    return [name for name, pattern in PATTERNS.items() if pattern.search(text)]
