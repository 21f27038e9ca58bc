"""Shared plumbing of the benchmarks: the provider double in its own process, a throwaway project,
subprocess timing with peak RSS, and the statistics we print (medians and ratios, never absolutes).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PY = sys.executable
MODEL = "openai/gpt-4o-mini"  # a priced model: litellm's cost path runs as it would for real
API_KEY = "sk-bench-0123456789"
SYSTEM = "You answer benchmark questions in one short sentence."

# What every child process gets: no price-map download, no telemetry, nothing leaves 127.0.0.1.
CHILD_ENV = {
    **{k: v for k, v in os.environ.items() if not k.startswith(("LLMOPS_", "LANGFUSE_", "OTEL_"))},
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "RAGAS_DO_NOT_TRACK": "true",
    "DO_NOT_TRACK": "1",
    "HF_HUB_OFFLINE": "1",
    "NO_PROXY": "127.0.0.1,localhost",
    "PROMPTFOO_DISABLE_TELEMETRY": "1",
    "PROMPTFOO_DISABLE_UPDATE": "1",
}


def question(i: int) -> str:
    """The i-th distinct prompt (distinct so that no cache anywhere can answer it)."""
    return f"What is {i} plus {i + 7}? Case {i:06d}."


@dataclass
class Provider:
    """The provider double running in its own process."""

    proc: subprocess.Popen[str]
    port: int

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/_double/stats", timeout=10) as r:
            return json.loads(r.read())  # type: ignore[no-any-return]

    def reset(self) -> None:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/_double/reset", data=b"", method="POST")
        with urllib.request.urlopen(req, timeout=10):
            pass


@contextlib.contextmanager
def provider(latency: float = 0.05, **opts: Any) -> Iterator[Provider]:
    """Start ``python -m llmops.testing`` (the provider double) and stop it afterwards."""
    args = [PY, "-m", "llmops.testing", "--port", "0", "--latency", str(latency), "--api-key", API_KEY]
    for key, value in opts.items():
        if value is not None:
            args += [f"--{key.replace('_', '-')}", str(value)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=CHILD_ENV)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("READY"):
        proc.kill()
        raise RuntimeError(f"provider double did not start: {line!r}")
    try:
        yield Provider(proc, int(line.split()[1]))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


PROMPT = """\
---
description: Benchmark question
inputs:
  question: {type: string}
params: {temperature: 0, max_tokens: 32}
---
{% message "system" %}""" + SYSTEM + """{% endmessage %}
{% message "user" %}{{ question }}{% endmessage %}
"""


def make_project(root: Path, n_cases: int, port: int, *, cache: str = "read-write", tracing: str | None = None,
                 concurrency: int = 64, extra: str = "") -> Path:
    """A project with one suite of ``n_cases`` distinct questions and no-LLM evaluators.

    ``tracing`` None keeps llmops's default (``auto``: the local trace store).
    """
    (root / "prompts" / "ask").mkdir(parents=True, exist_ok=True)
    (root / "evalsets").mkdir(exist_ok=True)
    (root / "prompts" / "ask" / "v1.jinja").write_text(PROMPT)
    (root / "pyproject.toml").write_text(f"""\
[project]
name = "bench"
version = "0"

[tool.llmops]
default_model = "bench"
judge_model = "bench"
cache = "{cache}"
{f'tracing = "{tracing}"' if tracing else ""}
concurrency = {concurrency}
{extra}
[tool.llmops.models.bench]
model = "{MODEL}"
params = {{api_base = "http://127.0.0.1:{port}/v1", api_key = "{API_KEY}"}}
""")
    with (root / "evalsets" / "cases.jsonl").open("w") as f:
        for i in range(n_cases):
            f.write(json.dumps({"id": f"c{i:06d}", "inputs": {"question": question(i)},
                                "expected": f"Case {i:06d}"}) + "\n")
    (root / "evalsets" / "bench.yaml").write_text("""\
name: bench
prompt: ask@1
evaluators:
  - contains: {name: echoes_case}
  - length: {max: 400}
  - regex: {pattern: "\\\\d+"}
gate:
  min_pass_rate: 0.5
  max_errors: 0
cases_file: cases.jsonl
""")
    return root / "evalsets" / "bench.yaml"


def forget_state(root: Path) -> None:
    """Delete the project's cache, run store and traces (a cold run, as on a fresh CI machine)."""
    shutil.rmtree(root / ".llmops", ignore_errors=True)


def set_port(root: Path, port: int) -> None:
    """Point an existing project at another provider port."""
    text = (root / "pyproject.toml").read_text()
    import re

    (root / "pyproject.toml").write_text(re.sub(r"127\.0\.0\.1:\d+", f"127.0.0.1:{port}", text))


@contextlib.contextmanager
def tempdir(prefix: str = "llmops-bench-") -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@dataclass
class Proc:
    """A finished child process: its wall time, peak RSS, exit code and last JSON line."""

    wall_s: float
    maxrss_mb: float
    returncode: int
    data: dict[str, Any]
    stdout: str
    stderr: str


def run(args: Sequence[str], *, cwd: Path | None = None, env: dict[str, str] | None = None,
        timeout: float = 600) -> Proc:
    """Run a child to completion; wall time from fork to reap, peak RSS from ``wait4``."""
    with tempfile.TemporaryFile(mode="w+") as out, tempfile.TemporaryFile(mode="w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(list(args), cwd=cwd, env={**CHILD_ENV, **(env or {})}, stdout=out, stderr=err,
                                text=True)
        deadline = start + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.002)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    data: dict[str, Any] = {}
    for line in reversed(stdout.splitlines()):
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                data = json.loads(line)
                break
    return Proc(wall, usage.ru_maxrss / 1024.0, proc.returncode, data, stdout, stderr)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def check(proc: Proc, what: str) -> Proc:
    if proc.returncode not in (0, 1):  # 1 = the gate said "failed": a verdict, not a crash
        raise RuntimeError(f"{what} exited {proc.returncode}:\n{proc.stderr[-3000:]}\n{proc.stdout[-2000:]}")
    return proc
