"""Where the JSON API may write a generated answer: content types the CMS apps register.

`POST /api/ai/generate/` with `page_id` and `field` saves the answer into a page. The page belongs to
the `pages` app, which sits above `integrations`; so `pages` registers a `WriteTarget` here when it is
ready (`pages.api`) and the API finds it by name, never importing `pages` (the app layers of
`.importlinter`).

May import only the standard library.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Protocol


class WriteTarget(Protocol):
    """A kind of content the API may write a generated field into."""

    fields: tuple[str, ...]

    def find(self, site_id: int, object_id: int) -> Any | None:
        """The site's object with this id, or None (another site's is None too)."""
        ...

    def save(
        self,
        obj: Any,
        field: str,
        result: Any,
        cost: Decimal | None,
        user_id: int,
        parameters: dict[str, Any],
        prompts: tuple[str | None, str],
    ) -> None:
        """Write the answer into `field` of `obj`, with its provenance, in one transaction."""
        ...


_targets: dict[str, WriteTarget] = {}


def register(name: str, target: WriteTarget) -> None:
    _targets[name] = target


def get(name: str) -> WriteTarget | None:
    return _targets.get(name)
