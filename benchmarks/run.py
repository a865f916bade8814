"""Benchmarks for the AI layer, printed as a table (run on demand: `bin/bench`).

All numbers come from one run against the loopback upstream emulator, so they measure our
overhead, not a vendor's: the emulator answers in well under a millisecond unless told to wait.

- overhead: p50/p99 of `AIService.generate_content` vs the raw `openai` SDK (one reused client)
  vs LiteLLM's `completion()`, same emulator, same prompt, interleaved rounds.
- batch: 100 prompts at concurrency 16 against a 50 ms upstream, wall time vs the ideal 7 x 50 ms.
- import time of `integrations.ai` (fresh interpreter) and peak memory over 1,000 sequential calls.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "backend"))
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "panel.settings_test")

KEY = "sk-bench-" + "0" * 40


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def setup_django() -> None:
    import django
    from django.conf import settings

    settings.DATABASES["default"] = {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def measure(fn, n: int) -> list[float]:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def overhead(upstream, n: int, with_litellm: bool) -> list[tuple[str, float, float]]:
    import openai
    from django.conf import settings

    from integrations.ai.service import AIService

    settings.OPENAI_API_KEY = KEY
    settings.OPENAI_BASE_URL = upstream.openai_base_url
    settings.AI_PROVIDER = "openai"
    messages = [{"role": "user", "content": "Write a one-line tagline for a bakery"}]
    raw = openai.OpenAI(api_key=KEY, base_url=upstream.openai_base_url, max_retries=0)

    def raw_call():
        raw.chat.completions.create(model="gpt-4o-mini", messages=messages, max_tokens=100, temperature=0.7)

    service = AIService(service="bench")

    def service_call():
        service.generate_content(messages[0]["content"], model="gpt-4o-mini", max_tokens=100)

    calls = {"raw openai SDK": raw_call, "AIService": service_call}
    if with_litellm:
        import litellm

        def litellm_call():
            litellm.completion(
                model="openai/gpt-4o-mini", messages=messages, max_tokens=100, temperature=0.7,
                api_key=KEY, api_base=upstream.openai_base_url,
            )

        calls["LiteLLM completion()"] = litellm_call
    for fn in calls.values():  # warm up: clients, pools, snapshots, lazy imports
        measure(fn, 50)
    samples: dict[str, list[float]] = {name: [] for name in calls}
    rounds = 10
    for _ in range(rounds):  # interleave so drift (CPU frequency, GC) hits every contender alike
        for name, fn in calls.items():
            samples[name] += measure(fn, n // rounds)
    return [(name, percentile(s, 50), percentile(s, 99)) for name, s in samples.items()]


def batch(upstream) -> tuple[float, float]:
    from integrations.ai.service import AIService

    upstream.reset()
    upstream.script(flavor="openai", delay=0.05, times=100)
    prompts = [f"Tagline number {i} for a bakery" for i in range(100)]
    started = time.perf_counter()
    items = AIService(service="bench.batch").generate_batch(prompts, concurrency=16, max_tokens=50)
    wall = time.perf_counter() - started
    assert all(item.ok for item in items), [item.error for item in items if not item.ok][:3]
    return wall * 1000, 7 * 50.0


def import_time() -> float:
    code = (
        "import sys,time; sys.path.insert(0,'backend'); t=time.perf_counter(); import integrations.ai; "
        "from integrations.ai import AIService; print((time.perf_counter()-t)*1000)"
    )
    runs = [float(subprocess.check_output([sys.executable, "-c", code], cwd=ROOT, text=True)) for _ in range(5)]
    return statistics.median(runs)


def memory(upstream, calls: int = 1000) -> float:
    from integrations.ai.service import AIService

    upstream.reset()
    service = AIService(service="bench.memory")
    service.generate_content("warm up", model="gpt-4o-mini", max_tokens=20)
    tracemalloc.start()
    for i in range(calls):
        service.generate_content(f"Sequential call {i}", model="gpt-4o-mini", max_tokens=20)
        if i % 100 == 0:
            upstream.reset()  # the emulator's own request log is not ours to count
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 1024 / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2000, help="calls per contender in the overhead benchmark")
    parser.add_argument("--no-litellm", action="store_true")
    args = parser.parse_args()

    setup_django()
    from integrations.ai import usage
    from integrations.ai.testing.upstream import Upstream

    with_litellm = not args.no_litellm
    if with_litellm:
        try:
            import litellm  # noqa: F401
        except ImportError:
            print("litellm not installed (pip install -r benchmarks/requirements.txt); skipping it")
            with_litellm = False

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, {platform.system()} {platform.release()}")
    with Upstream() as upstream:
        rows: list = []
        with usage.deferred(rows):  # ledger rows written after the timing, as batches do
            results = overhead(upstream, args.n, with_litellm)
        deferred_calls = len(rows)
        usage.flush(rows)
        raw_p50 = results[0][1]
        print("\noverhead (loopback emulator, zero added latency, "
              f"{args.n} calls each; ledger rows deferred: {deferred_calls})")
        print(f"{'contender':<24}{'p50 ms':>10}{'p99 ms':>10}{'p50 / raw':>12}")
        for name, p50, p99 in results:
            print(f"{name:<24}{p50:>10.3f}{p99:>10.3f}{p50 / raw_p50:>12.3f}")
        service_over = results[1][1] - raw_p50
        if with_litellm:
            litellm_over = results[2][1] - raw_p50
            print(f"added over raw SDK at p50: AIService {service_over:.3f} ms, LiteLLM {litellm_over:.3f} ms "
                  f"(ratio {service_over / litellm_over if litellm_over else float('nan'):.3f})")

        wall, ideal = batch(upstream)
        print(f"\nbatch: 100 prompts, concurrency 16, 50 ms upstream: {wall:.0f} ms wall "
              f"vs ideal {ideal:.0f} ms ({wall / ideal:.2f} x)")
        peak = memory(upstream)
    print(f"\nimport integrations.ai (fresh interpreter, median of 5): {import_time():.1f} ms")
    print(f"peak traced memory over 1,000 sequential calls (ledger written): {peak:.2f} MiB")


if __name__ == "__main__":
    main()
