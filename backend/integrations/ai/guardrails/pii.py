"""PII masking of prompts: e-mail addresses, phone numbers and IBANs replaced before anything leaves.

Microsoft Presidio (`presidio-analyzer` + `presidio-anonymizer`) does it where it is installed and its
spaCy model loads (it is not a dependency: the model is a separate download). Otherwise a fixed set:
e-mail addresses by pattern, phone numbers by Google's libphonenumber (`phonenumbers`, which finds
national numbers of the deployment's region, `AI_PII_PHONE_REGION`, and every +international one),
and IBANs by pattern and their ISO 13616 mod-97 checksum (so an order number is not an IBAN). Both
engines write the same placeholders, Presidio's entity names: `<EMAIL_ADDRESS>`, `<PHONE_NUMBER>`,
`<IBAN_CODE>`.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import Counter
from typing import Any

import phonenumbers

logger = logging.getLogger("integrations.ai")

EMAIL = "EMAIL_ADDRESS"
PHONE = "PHONE_NUMBER"
IBAN = "IBAN_CODE"
ENTITIES = (EMAIL, PHONE, IBAN)

# local part and domain as RFC 5322's dot-atoms (no quoted local parts), a top-level domain of letters
EMAIL_PATTERN = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w-])"
)
# two letters, two check digits, 11-30 letters/digits, optionally grouped by single spaces (print form)
IBAN_PATTERN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")


def iban_valid(candidate: str) -> bool:
    """ISO 13616: the country code and check digits moved to the end, letters as 10..35, mod 97 is 1."""
    compact = candidate.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    digits = "".join(str(int(c, 36)) for c in compact[4:] + compact[:4])
    return int(digits) % 97 == 1


def _spans(text: str, region: str) -> list[tuple[int, int, str]]:
    spans = [(m.start(), m.end(), EMAIL) for m in EMAIL_PATTERN.finditer(text)]
    spans += [(m.start(), m.end(), IBAN) for m in IBAN_PATTERN.finditer(text) if iban_valid(m.group())]
    taken = [(s, e) for s, e, _ in spans]
    for match in phonenumbers.PhoneNumberMatcher(text, region or None):
        if not any(s < match.end and match.start < e for s, e in taken):  # an IBAN's digits are not a phone
            spans.append((match.start, match.end, PHONE))
    return spans


def _replace(text: str, spans: list[tuple[int, int, str]]) -> str:
    for start, end, entity in sorted(spans, reverse=True):
        text = f"{text[:start]}<{entity}>{text[end:]}"
    return text


def mask_with_patterns(text: str, region: str = "US") -> tuple[str, Counter[str]]:
    """`text` with e-mail addresses, phone numbers and IBANs replaced; and how many of each."""
    spans = _spans(text, region)
    return _replace(text, spans), Counter(entity for _, _, entity in spans)


class _Presidio:
    """Presidio's engines, built once per process on first use; None when it is absent or cannot load."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._engines: tuple[Any, Any] | None = None
        self._tried = False

    def engines(self) -> tuple[Any, Any] | None:
        with self._lock:
            if not self._tried:
                self._tried = True
                try:
                    from presidio_analyzer import AnalyzerEngine
                    from presidio_anonymizer import AnonymizerEngine

                    self._engines = (AnalyzerEngine(), AnonymizerEngine())
                except ImportError:
                    self._engines = None
                except Exception as exc:  # installed, but its spaCy model is missing or broken
                    logger.warning("Presidio could not load (%s); PII is masked by the built-in patterns", exc)
                    self._engines = None
            return self._engines


presidio = _Presidio()


def mask(text: str, region: str = "US") -> tuple[str, Counter[str]]:
    """Mask PII in `text` with Presidio when it is available, else with the built-in patterns."""
    engines = presidio.engines()
    if engines is None:
        return mask_with_patterns(text, region)
    analyzer, anonymizer = engines
    found = analyzer.analyze(text=text, language="en", entities=list(ENTITIES))
    if not found:
        return text, Counter()
    return anonymizer.anonymize(text=text, analyzer_results=found).text, Counter(r.entity_type for r in found)


def engine_name() -> str:
    return "presidio" if presidio.engines() is not None else "patterns"
