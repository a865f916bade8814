"""`bin/bench --search`: search by meaning over 50,000 pages of one site (issue 23).

Seeds 50,000 pages into the fresh bench database, embeds them all through the gateway against the
loopback emulator (its own process, OpenAI's wire format; `pages.search.index_pages`: batched, each
request admitted, priced and ledgered) and prints the request count and cost; then times searches:
the whole `pages.search.nearest_ids` (the query embedded by one call to the emulator, then the
matrix product) and the in-process part alone, p50/p95 over distinct queries, plus the cold load of
the site's matrix from the database. The same in-process step on vectors of a vendor's size (1,536
dimensions, random unit vectors) shows what production-sized vectors cost.
"""

from __future__ import annotations

import random
import statistics
import time
from decimal import Decimal
from typing import Any

TOPICS = [
    ("bakery", "sourdough bread rye loaf croissant baking recipes oven flour"),
    ("florist", "roses tulips bouquet wedding flowers garden"),
    ("garage", "car brakes tyres engine servicing repair"),
    ("cafe", "espresso cappuccino tea cake coffee"),
    ("books", "novels poetry reading mystery authors library"),
    ("fitness", "gym yoga running training classes"),
    ("travel", "flights hotels holidays beaches tours"),
    ("music", "concerts guitar piano lessons band"),
]
FILLER_TEXT = "our team welcomes every visitor with friendly service and good value each week"
FILLER = FILLER_TEXT.split()


def page_texts(count: int, seed: int = 23) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    pages = []
    for i in range(count):
        name, words = TOPICS[i % len(TOPICS)]
        vocabulary = words.split()
        body = " ".join(rng.choice(vocabulary if rng.random() < 0.5 else FILLER) for _ in range(40))
        pages.append((f"{name.title()} page {i}", body))
    return pages


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def search_bench(make_site: Any, emulator: Any, pages: int = 50_000, queries: int = 200) -> None:
    import numpy as np

    from integrations.ai.ledger import usage
    from integrations.models import AIUsage, ModelPrice
    from pages import search
    from pages.models import Page, PageEmbedding

    ModelPrice.objects.get_or_create(
        provider="openai",
        model_id="text-embedding-3-small",
        defaults={"prompt_per_million": Decimal("0.02"), "completion_per_million": Decimal(0)},
    )
    site = make_site("search.bench.local", emulator.openai_base_url, Decimal("1000"))
    started = time.perf_counter()
    Page.objects.bulk_create(
        [
            Page(site=site, title=title, slug=f"page-{i}", body=body, status="published")
            for i, (title, body) in enumerate(page_texts(pages))
        ],
        batch_size=5000,
    )
    print(f"\nsearch: {pages:,} pages of one site seeded in {time.perf_counter() - started:.1f} s")

    rows = list(Page.objects.filter(site=site).prefetch_related("blocks").order_by("pk"))
    started = time.perf_counter()
    report = search.index_pages(site.id, rows, batch=2048)
    elapsed = time.perf_counter() - started
    usage.flush()
    ledger = AIUsage.objects.filter(site=site, service=search.SERVICE)
    print(
        f"embedded {report.embedded:,} pages in {report.requests} request(s) (emulator, "
        f"text-embedding-3-small, {PageEmbedding.objects.filter(site=site).first().dimensions} dimensions) in "
        f"{elapsed:.1f} s; cost ${report.cost} (ledger: {ledger.count()} rows, "
        f"${sum(r.cost or 0 for r in ledger)})"
    )

    started = time.perf_counter()
    search._matrices.clear()
    matrix = search._matrix(site.id)
    print(
        f"cold load of the site's matrix ({matrix.vectors.shape[0]:,} x {matrix.vectors.shape[1]}, float32) "
        f"from the database: {(time.perf_counter() - started) * 1000:.0f} ms"
    )

    rng = random.Random(7)
    texts = [f"{rng.choice(TOPICS)[1].split()[rng.randrange(4)]} {rng.choice(TOPICS)[0]} {i}" for i in range(queries)]
    full, hits_ok = [], 0
    for text in texts:
        t0 = time.perf_counter()
        ranked = search.nearest_ids(site.id, text, 10)
        full.append((time.perf_counter() - t0) * 1000)
        hits_ok += bool(ranked)
    local = []
    for i in range(queries):
        vector = matrix.vectors[(i * 97) % len(matrix.ids)].copy()
        t0 = time.perf_counter()
        search._top(matrix, vector, 10)
        local.append((time.perf_counter() - t0) * 1000)
    print(f"{'search (k=10)':<58}{'p50 ms':>8}{'p95 ms':>8}{'max ms':>8}")
    for label, samples in (
        (f"nearest_ids: query embedded (1 call) + matrix, {queries} queries", full),
        ("in-process only (matrix product + partial sort)", local),
    ):
        print(f"{label:<58}{statistics.median(samples):>8.2f}{percentile(samples, 95):>8.2f}{max(samples):>8.2f}")

    big = np.random.default_rng(1).standard_normal((pages, 1536), dtype=np.float32)
    big /= np.linalg.norm(big, axis=1, keepdims=True)
    wide = search._Matrix(0, matrix.ids, big, "random-1536")
    samples = []
    for i in range(queries):
        vector = big[(i * 97) % pages].copy()
        t0 = time.perf_counter()
        search._top(wide, vector, 10)
        samples.append((time.perf_counter() - t0) * 1000)
    print(
        f"{'in-process only, 1,536 dimensions (a vendor size)':<58}{statistics.median(samples):>8.2f}"
        f"{percentile(samples, 95):>8.2f}{max(samples):>8.2f}"
    )
    print(f"target: p95 < 50 ms; queries with results: {hits_ok}/{queries}")
