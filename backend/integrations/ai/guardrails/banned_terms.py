"""A site's banned terms and style guide, checked on generated text at review time (warnings, never blocking).

The site writes one rule per line: a term or phrase, optionally followed by `=>` and the advice to
show (`cheap => say "affordable"`). A term matches as whole words, case-insensitively, and a
trailing `*` matches any ending (`guarantee*` finds "guaranteed"). Lines starting with `#` are notes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class BannedTerm:
    term: str
    advice: str = ""

    @property
    def pattern(self) -> re.Pattern[str]:
        stem = self.term.rstrip("*")
        words = r"\s+".join(re.escape(w) for w in stem.split())
        tail = r"\w*" if self.term.endswith("*") else ""
        return re.compile(rf"(?<!\w){words}{tail}(?!\w)", re.IGNORECASE)


@dataclass(frozen=True)
class TermWarning:
    """One rule matching generated text: the rule, what matched (as written there), how often."""

    term: str
    found: str
    count: int
    advice: str = ""

    def __str__(self) -> str:
        times = f" ({self.count} times)" if self.count > 1 else ""
        advice = f": {self.advice}" if self.advice else ""
        return f"“{self.found}”{times} is on the site's banned-terms list{advice}"


class RuleError(ValueError):
    """A line of the banned-terms setting that cannot be a rule; the message names the line."""


def parse(text: str) -> tuple[BannedTerm, ...]:
    """The rules of the setting's text; `RuleError` names the first line that is not one."""
    rules = []
    for number, raw in enumerate((text or "").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        term, _, advice = line.partition("=>")
        term = term.strip()
        if not term.rstrip("*").strip():
            raise RuleError(f'Line {number} ("{line}") has no term before "=>": write e.g. cheap => say "affordable".')
        if "*" in term.rstrip("*"):
            raise RuleError(f'Line {number} ("{line}"): "*" may only end a term, e.g. guarantee*.')
        rules.append(BannedTerm(term, advice.strip()))
    return tuple(rules)


def check(text: str, rules: tuple[BannedTerm, ...]) -> list[TermWarning]:
    """The rules `text` breaks, in the order the site wrote them."""
    warnings = []
    for rule in rules:
        found = rule.pattern.findall(text or "")
        if found:
            warnings.append(TermWarning(rule.term, found[0], len(found), rule.advice))
    return warnings
