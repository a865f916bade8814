"""Structured blocks (hero, text, FAQ, call to action, features) written by a model as JSON.

The block type's JSON schema (`pages.blocks.json_schema`) goes to the gateway as `response_schema`:
each provider's strongest mechanism, jsonschema validation and one corrective retry naming the
errors are the gateway's (`integrations/ai/structured.py`). What the schema cannot say (a link's
scheme, required text left empty) is checked here with the admin's own `validate_block`. Either
failure is a `BlockGenerationFailed` (an `InvalidOutput`) and nothing is saved.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import Max

from integrations.ai import AIService as CoreAIService
from integrations.ai.ledger import usage
from integrations.ai.providers.errors import InvalidOutput, InvalidRequest
from prompts.versions import BuiltinPrompt, register_builtin

from .. import provenance
from ..blocks import SCHEMAS, BlockValidationError, describe, json_schema, validate_block
from ..models import Block, Page
from .errors import ServiceOutputError
from .reasoning import reasoning_budget

SYSTEM_PROMPT = (
    "You write website content blocks as JSON. Answer with one JSON object only, exactly in the "
    "requested shape: no markdown fences, no commentary."
)


def block_prompt(block_type: str, page_title: str, instructions: str = "") -> str:
    return (
        f"Write a '{block_type}' block for the web page \"{page_title}\".\n"
        + (f"Instructions: {instructions}\n" if instructions else "")
        + f"Return JSON of exactly this shape: {describe(block_type)}"
    )


# The version covers the wording and every block type's shape: a change to either is a new prompt version.
BLOCK_PROMPT = register_builtin(
    BuiltinPrompt(
        "pages.blocks",
        SYSTEM_PROMPT,
        "\n".join(
            [
                "Write a '{block_type}' block for the web page \"{page_title}\".",
                "Instructions: {instructions}",
                "Return JSON of exactly this shape: {shape}",
                *(f"{name}: {describe(name)}" for name in SCHEMAS),
            ]
        ),
    )
)
BLOCK_PARAMETERS: dict[str, Any] = {"max_tokens": 1200, "temperature": 0.5}


class BlockGenerationFailed(ServiceOutputError):
    """The model's block did not fit its type: not the schema's shape after the gateway's corrective
    retry, or a rule only `validate_block` knows. `errors` lists every problem."""

    code = "invalid_block_json"


class AdvancedAIService:
    def __init__(self, site: Any = None) -> None:
        self.site = site

    def _ai(self, site: Any = None) -> CoreAIService:
        return CoreAIService(site=site if site is not None else self.site, service="pages.blocks")

    def _call_ai_api(self, prompt: str, model: str | None = None, max_tokens: int = 500) -> str:
        """The plan's low-level call, kept: one prompt in, the answer's text out."""
        return self._ai().generate_content(prompt, model=model, max_tokens=max_tokens).content

    def block_prompt(self, block_type: str, page_title: str, instructions: str = "") -> str:
        return block_prompt(block_type, page_title, instructions)

    def generate_block_content(
        self,
        block_type: str,
        page_title: str,
        instructions: str = "",
        model: str | None = None,
        site: Any = None,
    ) -> dict[str, Any]:
        """Valid content for `block_type`, or BlockGenerationFailed (after the gateway's corrective retry)."""
        return self._block_content(block_type, page_title, instructions, model, site)[0]

    def _block_content(
        self,
        block_type: str,
        page_title: str,
        instructions: str,
        model: str | None,
        site: Any,
    ) -> tuple[dict[str, Any], list[Any]]:
        """The content and every call it took (a corrective retry counts in the provenance)."""
        if block_type not in SCHEMAS:
            raise InvalidRequest(f"Unknown block type {block_type!r}; choose one of {', '.join(SCHEMAS)}.")
        ai = self._ai(site)
        try:
            result = ai.generate_content(
                self.block_prompt(block_type, page_title, instructions),
                model=model,
                **{**BLOCK_PARAMETERS, **reasoning_budget(ai, model, BLOCK_PARAMETERS["max_tokens"])},
                system_prompt=SYSTEM_PROMPT,
                response_schema=json_schema(block_type),
            )
        except InvalidOutput as exc:
            raise BlockGenerationFailed(
                f"The model's {block_type} block was invalid twice: {'; '.join(exc.errors)}. Nothing was saved.",
                errors=exc.errors,
                provider=exc.provider,
            ) from exc
        try:
            validate_block(block_type, result.parsed)  # what the schema cannot say: link schemes, empty text
        except BlockValidationError as exc:
            raise BlockGenerationFailed(
                f"The model's {block_type} block does not fit: {exc}. Nothing was saved.",
                errors=exc.errors,
                provider=result.provider,
            ) from exc
        return result.parsed, result.steps_or_self()

    def generate_block(
        self, page: Page, block_type: str, instructions: str = "", model: str | None = None, save: bool = True
    ) -> Block:
        block, origin = self.propose_block_with_origin(page, block_type, instructions, model)
        if save:
            with transaction.atomic():
                block = self.add_block(page, block_type, block.content)
                provenance.record_block(block, origin, proposed=block.content)
        return block

    def propose_block(self, page: Page, block_type: str, instructions: str = "", model: str | None = None) -> Block:
        """A generated block to show before saving: validated content, not saved, no order yet."""
        return self.propose_block_with_origin(page, block_type, instructions, model)[0]

    def propose_block_with_origin(
        self,
        page: Page,
        block_type: str,
        instructions: str = "",
        model: str | None = None,
    ) -> tuple[Block, provenance.Origin]:
        """`propose_block`, plus what produced it (kept with the proposal, recorded when accepted)."""
        with usage.attributed_to(page):  # the block does not exist yet: its cost is the page's
            content, results = self._block_content(block_type, page.title, instructions, model, page.site_id)
        origin = provenance.origin_of(
            results,
            page,
            BLOCK_PROMPT,
            {**BLOCK_PARAMETERS, "model": model or "", "type": block_type, "instructions": instructions},
        )
        return Block(page=page, type=block_type, content=content), origin

    @staticmethod
    def add_block(page: Page, block_type: str, content: dict[str, Any]) -> Block:
        """Append an accepted block after the page's last one; full_clean checks the schema first."""
        with transaction.atomic():
            last = page.blocks.aggregate(last=Max("order"))["last"]
            block = Block(page=page, type=block_type, content=content, order=0 if last is None else last + 1)
            block.full_clean()
            block.save()
        return block
