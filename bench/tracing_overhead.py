"""Added latency of tracing per call, with Langfuse healthy, refusing, failing (503) or hanging.

    python bench/tracing_overhead.py [--pairs 2000]

Each mode alternates traced and untraced calls of the same cached prompt call (so the provider
and litellm are out of the picture and only the tracing path differs) and prints the medians and
the added latency per call. Everything stays on 127.0.0.1 (a local Langfuse receiver).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
for _name in [n for n in os.environ if n.startswith(("LLMOPS_", "LANGFUSE_"))]:
    del os.environ[_name]

REPO = Path(__file__).resolve().parent.parent
INPUTS = {"question": "Capital of France?", "contexts": ["Paris is the capital of France."]}


def _project() -> Path:
    root = Path(tempfile.mkdtemp(prefix="llmops-bench-tracing-"))
    (root / "pyproject.toml").write_text('[project]\nname = "b"\nversion = "0"\n[tool.llmops]\n'
                                         'default_model = "fake/echo"\n', encoding="utf-8")
    shutil.copytree(REPO / "prompts", root / "prompts")
    return root


def run(mode: str, pairs: int) -> tuple[float, float, int]:
    """(median traced s, median untraced s, undelivered spans) for one Langfuse mode."""
    from llmops.api import load_prompt
    from llmops.config import load_settings
    from llmops.llm.cache import request_key
    from llmops.llm.client import LLMClient
    from llmops.llm.types import Completion, Usage
    from llmops.testing.langfuse_receiver import LangfuseReceiver, closed_port
    from llmops.tracing import create_tracer
    from llmops.tracing.langfuse_exporter import LangfuseExporter

    project = _project()
    with LangfuseReceiver(public_key=f"pk-lf-bench-{mode}", mode="ok" if mode == "refused" else mode) as lf:  # type: ignore[arg-type]
        host = f"http://127.0.0.1:{closed_port()}" if mode == "refused" else lf.url
        env = {"LANGFUSE_PUBLIC_KEY": lf.public_key, "LANGFUSE_SECRET_KEY": lf.secret_key, "LANGFUSE_HOST": host}
        settings = load_settings(project, env=env)
        assert settings.langfuse is not None
        exporter = LangfuseExporter(settings.langfuse, environment=settings.environment, export_timeout_s=1.0)
        tracer = create_tracer(settings, exporter=exporter)
        traced = LLMClient(settings, observers=[tracer])
        plain = LLMClient(settings)
        pv = load_prompt("rag_answer@2", settings)
        messages = pv.render(INPUTS)
        resolved, merged = traced.resolve("fake/echo", pv.meta.params)
        key = request_key(resolved, messages, merged, settings.seed, 0)
        assert traced.cache is not None
        traced.cache.put(key, Completion(text="Paris.", model="fake/echo", resolved_model=resolved,
                                         usage=Usage(20, 2), cost_usd=0.0001, cache_key=key))

        async def loop() -> tuple[list[float], list[float]]:
            on: list[float] = []
            off: list[float] = []
            for i in range(pairs):
                for client in ((traced, plain) if i % 2 == 0 else (plain, traced)):
                    start = time.perf_counter()
                    await client.acomplete(messages, "fake/echo", pv.meta.params)
                    (on if client is traced else off).append(time.perf_counter() - start)
                await asyncio.sleep(0.001)
            return on, off

        on, off = asyncio.run(loop())
        stats = tracer.shutdown(timeout_s=2)
    shutil.rmtree(project, ignore_errors=True)
    return statistics.median(on), statistics.median(off), stats.undelivered


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=2000)
    args = parser.parse_args()
    print(f"{'langfuse':10} {'traced':>10} {'untraced':>10} {'added':>10} {'undelivered':>12}")
    for mode in ("ok", "refused", "503", "hang"):
        on, off, undelivered = run(mode, args.pairs)
        print(f"{mode:10} {on * 1e3:8.3f}ms {off * 1e3:8.3f}ms {(on - off) * 1e3:8.3f}ms {undelivered:12d}")


if __name__ == "__main__":
    main()
