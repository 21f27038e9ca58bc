"""Streaming and tool-calling overhead: llmops vs a bare LiteLLM loop on the same provider double.

    python bench/streaming_tools.py [--calls 200] [--words 200] [--tasks 40] [--reps 5]

The provider double runs in its own process (so its CPU is not ours). Rows, each the median over
``--reps`` interleaved pairs (llmops, bare, llmops, bare, ...):

- streaming CPU per chunk: ``LLMClient.astream`` (cache off, no tracing) vs a bare
  ``litellm.acompletion(stream=True)`` loop, same requests, same chunks; target <= 1.05x.
- TTFT: what llmops records (``Completion.ttft_s``) vs what the caller measures around the first
  chunk it receives; target: median difference within 1 ms.
- tool steps: ``run_agent`` with scripted tools (a two-tool task: three model calls, two tool
  results) vs a bare loop calling ``litellm.acompletion`` and appending the same tool results;
  CPU per step; target <= 1.0x.

Not a test: it prints numbers and never fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

SERVER = """
import json, sys
from llmops.testing import ProviderServer, Reply, ToolUse

def respond(provider, messages):
    if messages[-1]["content"].startswith("agent:"):
        tools = [m for m in messages if m["role"] == "tool"]
        if len(tools) == 0:
            return Reply(tool_calls=(ToolUse("lookup_order", {"order_id": "A1"}),))
        if len(tools) == 1:
            return Reply(tool_calls=(ToolUse("refund", {"order_id": "A1", "amount": 5}),))
        return "done: refunded"
    users = [m["content"] for m in messages if m["role"] == "user"]
    return users[-1]

server = ProviderServer(api_key=None, responder=respond, record=False, latency_s=float(sys.argv[1]))
server.start()
print("READY", server.port, flush=True)
sys.stdin.read()
"""
KEY = "sk-bench-0000000000"


def start_server(latency: float) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(latency)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    return proc, f"http://127.0.0.1:{line[1]}/v1"


async def bare_stream(litellm: Any, base: str, prompts: list[str], concurrency: int) -> tuple[int, list[float]]:
    sem = asyncio.Semaphore(concurrency)
    chunks = 0
    gaps: list[float] = []

    async def one(text: str) -> None:
        nonlocal chunks
        async with sem:
            began = time.perf_counter()
            response = await litellm.acompletion(model="openai/gpt-4o-mini", api_base=base, api_key=KEY,
                                                 messages=[{"role": "user", "content": text}], stream=True,
                                                 stream_options={"include_usage": True}, max_retries=0)
            first = None
            async for chunk in response:
                if chunk.choices and chunk.choices[0].delta.content:
                    chunks += 1
                    if first is None:
                        first = time.perf_counter() - began
            gaps.append(first or 0.0)

    await asyncio.gather(*(one(p) for p in prompts))
    return chunks, gaps


async def llmops_stream(client: Any, prompts: list[str], concurrency: int) -> tuple[int, list[float]]:
    chunks = 0
    diffs: list[float] = []

    sem = asyncio.Semaphore(concurrency)

    async def one(text: str) -> None:
        async with sem:
            await measured(text)

    async def measured(text: str) -> None:
        nonlocal chunks
        began = time.perf_counter()
        stream = client.astream([{"role": "user", "content": text}], "srv")
        seen = None
        async for _ in stream:
            chunks += 1
            if seen is None:
                seen = time.perf_counter() - began
        diffs.append(abs((seen or 0.0) - stream.completion.ttft_s))

    await asyncio.gather(*(one(p) for p in prompts))
    return chunks, diffs


TOOLS = [{"type": "function", "function": {"name": n, "description": n, "parameters": {"type": "object"}}}
         for n in ("lookup_order", "refund")]


async def bare_agent(litellm: Any, base: str, tasks: int, concurrency: int) -> int:
    sem = asyncio.Semaphore(concurrency)
    results = {"lookup_order": '{"status": "delivered"}', "refund": '{"status": "approved"}'}
    steps = 0

    async def one(i: int) -> None:
        nonlocal steps
        async with sem:
            convo: list[dict[str, Any]] = [{"role": "user", "content": f"agent: task {i}"}]
            for _ in range(5):
                response = await litellm.acompletion(model="openai/gpt-4o-mini", api_base=base, api_key=KEY,
                                                     messages=convo, tools=TOOLS, max_retries=0)
                steps += 1
                message = response.choices[0].message
                if not message.tool_calls:
                    return
                convo.append({"role": "assistant", "content": message.content, "tool_calls": [
                    {"id": c.id, "type": "function", "function": {"name": c.function.name,
                                                                  "arguments": c.function.arguments}}
                    for c in message.tool_calls]})
                for call in message.tool_calls:
                    json.loads(call.function.arguments or "{}")
                    convo.append({"role": "tool", "tool_call_id": call.id, "content": results[call.function.name]})

    await asyncio.gather(*(one(i) for i in range(tasks)))
    return steps


async def llmops_agent(client: Any, tasks: int) -> int:
    from llmops.llm.agent import ScriptedTool, run_agent

    scripts = {"lookup_order": [ScriptedTool(result={"status": "delivered"})],
               "refund": [ScriptedTool(result={"status": "approved"})]}
    steps = 0

    async def one(i: int) -> None:
        nonlocal steps
        from llmops.llm.types import Message

        run = await run_agent(client, [Message("user", f"agent: task {i}")], "srv", {"tools": TOOLS},
                              tools=scripts, declared=["lookup_order", "refund"], max_steps=5)
        steps += len(run.completions)

    await asyncio.gather(*(one(i) for i in range(tasks)))
    return steps


def cpu(fn: Any) -> tuple[float, Any]:
    began = time.process_time()
    out = asyncio.run(fn())
    return time.process_time() - began, out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--words", type=int, default=200)
    parser.add_argument("--tasks", type=int, default=40)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--latency", type=float, default=0.02)
    args = parser.parse_args()
    proc, base = start_server(args.latency)
    try:
        from llmops.config import load_settings
        from llmops.llm.client import LLMClient
        from llmops.llm.loader import load_litellm

        litellm = load_litellm()
        settings = load_settings(ROOT, overrides={
            "models": {"srv": {"model": "openai/gpt-4o-mini", "params": {"api_base": base, "api_key": KEY}}},
            "cache": "off", "tracing": "off", "evaluator_modules": []})
        client = LLMClient(settings, concurrency=args.concurrency)
        prompts = [" ".join(f"w{i}x{j}" for j in range(args.words)) for i in range(args.calls)]
        asyncio.run(llmops_stream(client, prompts[:10], args.concurrency))  # warm both paths
        asyncio.run(bare_stream(litellm, base, prompts[:10], args.concurrency))
        stream_ratios, ttft_diffs, ours_ms, bare_ms = [], [], [], []
        for _ in range(args.reps):
            c1, (n1, _) = cpu(lambda: llmops_stream(client, prompts, args.concurrency))
            c2, (n2, _) = cpu(lambda: bare_stream(litellm, base, prompts, args.concurrency))
            stream_ratios.append((c1 / n1) / (c2 / n2))
            ours_ms.append(c1 / n1 * 1000)
            bare_ms.append(c2 / n2 * 1000)
            # TTFT one call at a time: no queueing for a concurrency slot inside the caller's measure.
            ttft_diffs.extend(asyncio.run(llmops_stream(client, prompts[:20], 1))[1])
        tool_ratios, ours_step, bare_step = [], [], []
        asyncio.run(llmops_agent(client, 5))
        asyncio.run(bare_agent(litellm, base, 5, args.concurrency))
        for _ in range(args.reps):
            c1, s1 = cpu(lambda: llmops_agent(client, args.tasks))
            c2, s2 = cpu(lambda: bare_agent(litellm, base, args.tasks, args.concurrency))
            tool_ratios.append((c1 / s1) / (c2 / s2))
            ours_step.append(c1 / s1 * 1000)
            bare_step.append(c2 / s2 * 1000)
        print(json.dumps({
            "stream_cpu_per_chunk_ratio": statistics.median(stream_ratios),
            "stream_cpu_per_chunk_ms": {"llmops": statistics.median(ours_ms), "bare": statistics.median(bare_ms)},
            "chunks_per_call": args.words,
            "ttft_abs_diff_ms": {"median": statistics.median(ttft_diffs) * 1000,
                                 "p95": sorted(ttft_diffs)[int(0.95 * (len(ttft_diffs) - 1))] * 1000},
            "tool_step_cpu_ratio": statistics.median(tool_ratios),
            "tool_step_cpu_ms": {"llmops": statistics.median(ours_step), "bare": statistics.median(bare_step)},
            "load": os.getloadavg()[0],
        }, indent=1))
    finally:
        proc.stdin.close()  # type: ignore[union-attr]
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
