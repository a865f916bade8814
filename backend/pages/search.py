"""Search by meaning and related pages: one embedding per page, stored per site, searched in-process.

Each page's text (title, meta description, body, block strings) is embedded through the gateway
(`AIService.embed`: the site's provider, keys, policy, budget and ledger) when its content hash
changes; `index_site` embeds only the pages whose hash differs, in batches. Vectors are stored as
packed float32 (`PageEmbedding`). A search loads the site's vectors into one normalised numpy
matrix, kept per process and per site and dropped when the site's index version (a counter in the
shared cache, bumped on every write) moves; a query is one matrix-vector product and a partial sort.
That runs the same on SQLite and PostgreSQL. pgvector is not used (not built): the in-process
search answers 50,000 pages well inside the 50 ms target (`bin/bench --search`).
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np
from django.conf import settings
from django.core.cache import cache

from integrations.ai import AIService as CoreAIService
from integrations.ai.ledger import usage
from integrations.ai.providers.errors import InvalidRequest

from .models import Page, PageEmbedding

SERVICE = "pages.search"
TEXT_LIMIT = 8000  # characters of a page embedded (~2,700 tokens: inside every vendor's 8,191)
BATCH = 512  # pages per embed call (the gateway splits further to the vendor's limits)


def page_text(page: Page) -> str:
    """What a page means, for its vector: title, meta description, body and its blocks' strings."""
    from .translation import _leaves

    parts = [page.title, page.meta_description, page.body]
    parts += [text for block in page.blocks.all() for _, text in _leaves(block.content)]
    return "\n".join(p for p in parts if p and p.strip())[:TEXT_LIMIT] or page.slug


def model_for(site_id: int) -> str | None:
    """The embedding model a site's pages use: `PAGES_EMBEDDING_MODEL`, else the provider's default."""
    return settings.PAGES_EMBEDDING_MODEL or None


def text_hash(text: str, model: str | None) -> str:
    return hashlib.sha256(f"{model or ''}\n{text}".encode()).hexdigest()


def _version_key(site_id: int) -> str:
    return f"pages:search:version:{site_id}"


def _bump(site_id: int) -> None:
    """Move the site's index version. A lost counter (cache cleared, Redis restarted) starts again from the clock,
    never from 1: a process still holding the matrix of an old "version 1" must not take it as current."""
    key = _version_key(site_id)
    if cache.add(key, time.time_ns(), timeout=None):
        return
    try:
        cache.incr(key)
    except ValueError:  # gone between the two calls
        cache.add(key, time.time_ns(), timeout=None)


@dataclass
class IndexReport:
    """What indexing took: pages embedded, pages already up to date, upstream requests and their cost."""

    embedded: int = 0
    unchanged: int = 0
    requests: int = 0
    cached: int = 0
    cost: Decimal | None = Decimal(0)


def index_pages(site_id: int, pages: list[Page], batch: int = BATCH, on_batch: Any = None) -> IndexReport:
    """Embed those of `pages` (all of site `site_id`) whose text changed since their stored vector."""
    if any(page.site_id != site_id for page in pages):
        raise InvalidRequest("index_pages takes the pages of one site only.")
    model = model_for(site_id)
    stored = dict(PageEmbedding.objects.filter(page__in=[p.pk for p in pages]).values_list("page_id", "content_hash"))
    todo = []
    report = IndexReport()
    for page in pages:
        text = page_text(page)
        digest = text_hash(text, model)
        if stored.get(page.pk) == digest:
            report.unchanged += 1
        else:
            todo.append((page, text, digest))
    ai = CoreAIService(site=site_id, service=SERVICE)
    for start in range(0, len(todo), batch):
        chunk = todo[start : start + batch]
        # One page: its ledger row carries the page; a batch's rows (one request, many pages) the site only.
        with usage.attributed_to(chunk[0][0] if len(chunk) == 1 else None):
            result = ai.embed([text for _, text, _ in chunk], model=model)
        report.requests += result.requests
        report.cached += result.cached
        report.cost = None if result.cost is None or report.cost is None else report.cost + result.cost
        rows = [
            PageEmbedding(
                page=page,
                site_id=site_id,
                provider=result.provider,
                model=result.model,
                content_hash=digest,
                dimensions=len(vector),
                vector=np.asarray(vector, dtype="<f4").tobytes(),
            )
            for (page, _, digest), vector in zip(chunk, result.vectors, strict=True)
        ]
        PageEmbedding.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["page"],
            update_fields=["site", "provider", "model", "content_hash", "dimensions", "vector", "updated_at"],
        )
        report.embedded += len(rows)
        _bump(site_id)
        if on_batch is not None:
            on_batch(chunk, result)
    return report


def stale_page_ids(site_id: int) -> list[int]:
    """Pages of the site with no vector or one made from other text (or another model)."""
    model = model_for(site_id)
    stored = dict(PageEmbedding.objects.filter(site_id=site_id).values_list("page_id", "content_hash"))
    pages = Page.objects.filter(site_id=site_id).prefetch_related("blocks").order_by("pk")
    return [p.pk for p in pages if stored.get(p.pk) != text_hash(page_text(p), model)]


# -- the in-process index ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Matrix:
    version: Any
    ids: np.ndarray  # page ids, row order
    vectors: np.ndarray  # float32, each row of unit length
    model: str


_matrices: dict[int, _Matrix] = {}
_lock = threading.Lock()


def _matrix(site_id: int) -> _Matrix | None:
    version = cache.get(_version_key(site_id))
    current = _matrices.get(site_id)
    if current is not None and current.version == version and version is not None:
        return current
    rows = list(
        PageEmbedding.objects.filter(site_id=site_id)
        .order_by("page_id")
        .values_list("page_id", "model", "dimensions", "vector")
    )
    if not rows:
        return None
    model = max({r[1] for r in rows}, key=lambda m: sum(r[1] == m for r in rows))  # one space: the most used
    rows = [r for r in rows if r[1] == model]
    dims = rows[0][2]
    rows = [r for r in rows if r[2] == dims]
    vectors = np.frombuffer(b"".join(bytes(r[3]) for r in rows), dtype="<f4").reshape(len(rows), dims)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = vectors / np.where(norms == 0, 1, norms)
    if version is None:
        _bump(site_id)
        version = cache.get(_version_key(site_id))
    built = _Matrix(
        version,
        np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)),
        np.ascontiguousarray(vectors, dtype=np.float32),
        model,
    )
    with _lock:
        _matrices[site_id] = built
    return built


def _top(matrix: _Matrix, query: np.ndarray, k: int, exclude: int | None = None) -> list[tuple[int, float]]:
    scores = matrix.vectors @ query
    if exclude is not None:
        scores[matrix.ids == exclude] = -np.inf
    k = min(k, len(scores) - (exclude is not None and bool((matrix.ids == exclude).any())))
    if k <= 0:
        return []
    top = np.argpartition(-scores, k - 1)[:k]
    top = top[np.argsort(-scores[top], kind="stable")]
    return [(int(matrix.ids[i]), float(scores[i])) for i in top]


@dataclass(frozen=True)
class Hit:
    page: Page
    score: float  # cosine similarity, -1..1


def _hits(site_id: int, ranked: list[tuple[int, float]]) -> list[Hit]:
    pages = Page.objects.filter(site_id=site_id, pk__in=[pk for pk, _ in ranked]).in_bulk()
    return [Hit(pages[pk], score) for pk, score in ranked if pk in pages]


def nearest_ids(site_id: int, query: str, k: int = 10) -> list[tuple[int, float]]:
    """(page id, score) of the `k` pages of the site nearest to `query` (the query is embedded: one call,
    or none when the per-site cache has it)."""
    if not isinstance(query, str) or not query.strip():
        raise InvalidRequest("Give some words to search for.")
    matrix = _matrix(site_id)
    if matrix is None:
        return []
    result = CoreAIService(site=site_id, service=SERVICE).embed([query.strip()], model=model_for(site_id))
    vector = np.asarray(result.vectors[0], dtype=np.float32)
    if result.model != matrix.model or vector.shape[0] != matrix.vectors.shape[1]:
        raise InvalidRequest(
            f"The site's pages were embedded with {matrix.model}; the query's by {result.model} "
            "(another space). Re-index the pages (the embed job) after changing the embedding model."
        )
    vector /= np.linalg.norm(vector) or 1.0
    return _top(matrix, vector, k)


def nearest(site: Any, query: str, k: int = 10) -> list[Hit]:
    """The `k` pages of `site` (a Site or its id) nearest in meaning to `query`, best first."""
    site_id = getattr(site, "pk", site)
    return _hits(site_id, nearest_ids(site_id, query, k))


def related(page: Page, k: int = 5) -> list[Hit]:
    """The `k` pages of the page's own site nearest to it, from its stored vector (no call is made)."""
    matrix = _matrix(page.site_id)
    if matrix is None:
        return []
    rows = np.nonzero(matrix.ids == page.pk)[0]
    if not len(rows):
        return []
    return _hits(page.site_id, _top(matrix, matrix.vectors[rows[0]].copy(), k, exclude=page.pk))


def forget(site_id: int) -> None:
    """Drop the site's cached matrix in every process (its version moves)."""
    _bump(site_id)
