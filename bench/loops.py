"""The workloads the benchmarks time, each run as its own process: ``python bench/loops.py KIND ...``.

Each prints one JSON line: ``run_s`` (the send-everything phase, timed inside the process),
``import_s`` and the answers' count; the caller times the whole process from outside.

Kinds:
    aiohttp   the transport floor: one aiohttp session, a semaphore, post and parse JSON.
    litellm   the bare LiteLLM loop: ``litellm.acompletion`` under a semaphore, nothing else.
    harness   ``llmops.run_suite`` on a bench project (results stored, no-LLM evaluators).
    client    ``LLMClient.acomplete`` in a loop (the per-call cost of the client alone).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from typing import Any

T0 = time.perf_counter()
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import API_KEY, MODEL, SYSTEM, question  # noqa: E402


def messages(i: int) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question(i)}]


async def aiohttp_loop(base: str, n: int, concurrency: int) -> int:
    import aiohttp

    sem = asyncio.Semaphore(concurrency)
    headers = {"Authorization": f"Bearer {API_KEY}"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def one(i: int) -> str:
            async with sem:
                body = {"model": MODEL.split("/", 1)[1], "messages": messages(i), "temperature": 0,
                        "max_tokens": 32}
                async with session.post(f"{base}/chat/completions", json=body, headers=headers) as r:
                    data = await r.json()
                    return str(data["choices"][0]["message"]["content"])

        out = await asyncio.gather(*(one(i) for i in range(n)))
    return sum(1 for o in out if o)


async def litellm_loop(base: str, n: int, concurrency: int) -> int:
    import litellm

    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> str:
        async with sem:
            r = await litellm.acompletion(model=MODEL, messages=messages(i), api_base=base, api_key=API_KEY,
                                          temperature=0, max_tokens=32)
            return str(r.choices[0].message.content)

    out = await asyncio.gather(*(one(i) for i in range(n)))
    return sum(1 for o in out if o)


CLIENT_TRACER: list[object] = []


async def client_loop(base: str, n: int, concurrency: int) -> int:
    from llmops.llm.client import LLMClient

    client = LLMClient(client_settings(base, concurrency))
    for tracer in CLIENT_TRACER:
        tracer.attach(client)  # type: ignore[attr-defined]
        # The tracer's work on the calling thread, timed where it happens (see TRACE_CPU).
        client.observers = [_timed_observer(o) if o is tracer else o for o in client.observers]

    async def one(i: int) -> str:
        c = await client.acomplete(messages(i), "bench", {"temperature": 0, "max_tokens": 32})
        return c.text

    out = await asyncio.gather(*(one(i) for i in range(n)))
    return sum(1 for o in out if o)


# CPU seconds spent in tracing, measured directly: the tracer's observer on the calling thread,
# plus every thread tracing started (its writer, the OpenTelemetry processor, the Langfuse SDK's
# consumers). Two whole runs differ by ±10% on these shared cores; this attribution does not.
TRACE_CPU = [0.0]
_NOT_TRACING_THREADS = ("MainThread", "llmops-litellm", "asyncio", "ThreadPoolExecutor")


def _timed_observer(observer: Any) -> Any:
    def timed(record: Any) -> None:
        start = time.thread_time()
        try:
            observer(record)
        finally:
            TRACE_CPU[0] += time.thread_time() - start

    return timed


def tracing_threads_cpu() -> float:
    """CPU seconds used so far by the threads tracing runs (Linux: /proc/self/task)."""
    import threading

    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for thread in threading.enumerate():
        if thread.name.startswith(_NOT_TRACING_THREADS) or thread.native_id is None:
            continue
        try:
            with open(f"/proc/self/task/{thread.native_id}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def client_settings(base: str, concurrency: int, tracing: str = "off") -> object:
    from llmops.config import load_settings

    models = {"bench": {"model": MODEL, "params": {"api_base": base, "api_key": API_KEY}}}
    return load_settings(os.getcwd(), overrides={"models": models, "cache": "off", "concurrency": concurrency,
                                                 "tracing": tracing})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["aiohttp", "litellm", "harness", "client"])
    parser.add_argument("--base", default=None)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--project", default=None, help="harness: the bench project folder")
    parser.add_argument("--workers", type=int, default=1, help="harness: worker processes")
    parser.add_argument("--tracing", default="off", help="harness: off | local | langfuse")
    parser.add_argument("--profile", default=None, help="write a cProfile of the run phase here")
    parser.add_argument("--warm", action="store_true", help="import litellm before the timed phase")
    args = parser.parse_args()

    result: dict[str, object] = {"kind": args.kind}
    if args.kind == "harness":
        run_harness(args, result)
    else:
        loop_fn = {"aiohttp": aiohttp_loop, "litellm": litellm_loop, "client": client_loop}[args.kind]
        t = time.perf_counter()
        if args.kind == "litellm" or args.warm:
            import litellm  # noqa: F401  (timed apart from the loop)
        if args.kind == "client":
            _freeze_like_the_cli()
            _load_litellm()
            if args.tracing != "off":
                from llmops.tracing import get_tracer

                tracer = get_tracer(client_settings(args.base, args.concurrency, args.tracing))
                _warm(tracer)
                CLIENT_TRACER.append(tracer)
        result["import_s"] = time.perf_counter() - t
        profiler = _profiler(args.profile)
        threads_before = tracing_threads_cpu()
        t = time.perf_counter()
        cpu = time.process_time()
        result["answers"] = asyncio.run(loop_fn(args.base, args.n, args.concurrency))
        result["run_s"] = time.perf_counter() - t
        result["cpu_s"] = time.process_time() - cpu
        _dump(profiler, args.profile)
        for tracer in CLIENT_TRACER:
            t = time.perf_counter()
            tracer.flush(30)  # type: ignore[attr-defined]
            result["flush_s"] = time.perf_counter() - t
            result["traced"] = tracer.stats().recorded  # type: ignore[attr-defined]
        if CLIENT_TRACER:  # after the flush: the writer's work for these calls is done
            result["trace_cpu_s"] = TRACE_CPU[0] + tracing_threads_cpu() - threads_before
    result["total_s"] = time.perf_counter() - T0
    print(json.dumps(result), flush=True)


def _load_litellm() -> None:
    """Import litellm the way llmops does (in this tree, or a ``--before`` tree from before the split)."""
    try:
        from llmops.llm.loader import load_litellm
    except ImportError:  # an llmops tree from before llm/client.py was split
        from llmops.llm.client import _litellm as load_litellm  # type: ignore[attr-defined,no-redef]
    load_litellm()


def run_harness(args: argparse.Namespace, result: dict[str, object]) -> None:
    from llmops.config import load_settings
    from llmops.runner.engine import run_suite

    t = time.perf_counter()
    _freeze_like_the_cli()
    _load_litellm()
    result["import_s"] = time.perf_counter() - t
    settings = load_settings(args.project, overrides={"tracing": args.tracing})
    tracer = None
    if args.tracing != "off":
        from llmops.tracing import get_tracer

        tracer = get_tracer(settings)
        _warm(tracer)
    profiler = _profiler(args.profile)
    t = time.perf_counter()
    cpu = time.process_time()
    kwargs: dict[str, object] = {}
    if args.workers > 1:
        kwargs["workers"] = args.workers
    run = run_suite("bench", settings=settings, concurrency=args.concurrency, progress=False, tracer=tracer,
                    **kwargs)
    result["run_s"] = time.perf_counter() - t
    result["cpu_s"] = time.process_time() - cpu
    _dump(profiler, args.profile)
    if tracer is not None:
        t = time.perf_counter()
        tracer.flush(30)
        result["flush_s"] = time.perf_counter() - t
    result["answers"] = sum(1 for r in run.results if r.status != "error")
    result["errors"] = sum(1 for r in run.results if r.status == "error")
    result["units"] = len(run.results)


def _freeze_like_the_cli() -> None:
    """What the `llmops` command does for its own process (absent in an llmops from before it)."""
    try:
        from llmops import _runtime
    except ImportError:  # `--before`: an llmops without it
        return
    _runtime.freeze_heap_after_import = True


def _warm(tracer: object) -> None:
    """One span through the tracer before timing: its worker and exporter (SDK import, connection
    probe) start once per process; the benchmark measures the cost per call after that."""
    from llmops.tracing import span

    with span("warm-up", tracer=tracer):  # type: ignore[arg-type]
        pass
    tracer.flush(30)  # type: ignore[attr-defined]


def _profiler(path: str | None) -> object:
    if not path:
        return None
    import cProfile

    prof = cProfile.Profile()
    prof.enable()
    return prof


def _dump(profiler: object, path: str | None) -> None:
    if profiler is None or not path:
        return
    profiler.disable()  # type: ignore[attr-defined]
    profiler.dump_stats(path)  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
