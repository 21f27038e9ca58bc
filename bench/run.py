"""The performance budget: ``python bench/run.py [--quick] [--only SECTION,...] [--write]``.

Every number printed is a ratio (or a count) measured in this one run against a reference that
ran in the same run, interleaved: these 2-core machines are shared, so absolute seconds mean
little from one run to the next. ``--write`` replaces the results table in ``bench/README.md``.

Sections (in order): startup, throughput, whole, replay, ratelimit, tracing, memory, embedded.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (
    API_KEY,
    BENCH,
    MODEL,
    PY,
    REPO,
    SYSTEM,
    Proc,
    check,
    forget_state,
    make_project,
    median,
    provider,
    question,
    run,
    tempdir,
)

LOOPS = str(BENCH / "loops.py")
LLMOPS = [str(Path(PY).parent / "llmops")] if (Path(PY).parent / "llmops").exists() else [PY, "-m", "llmops"]
PROMPTFOO_DIR = Path(os.environ.get("PROMPTFOO_DIR", "/tmp/pf"))
# `--before SRC`: an llmops source tree from before this work, run through the same workloads.
BEFORE: Path | None = None


def before_env() -> dict[str, str]:
    assert BEFORE is not None
    return {"PYTHONPATH": str(BEFORE)}


def llmops_cmd(before: bool = False) -> list[str]:
    return [PY, "-m", "llmops"] if before else LLMOPS


@dataclass
class Row:
    """One line of the results table."""

    section: str
    measure: str
    result: str
    target: str = ""
    met: bool | None = None

    def status(self) -> str:
        return {True: "met", False: "**missed**", None: ""}[self.met]


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)

    def add(self, *args: Any, **kwargs: Any) -> None:
        row = Row(*args, **kwargs)
        self.rows.append(row)
        mark = {True: "  [met]", False: "  [MISSED]", None: ""}[row.met]
        print(f"  {row.measure}: {row.result}{'  (target ' + row.target + ')' if row.target else ''}{mark}",
              flush=True)


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def fmt(x: float, unit: str = "×") -> str:
    return f"{x:.2f}{unit}"


# ---- startup --------------------------------------------------------------------------------
def bench_startup(rep: Report, quick: bool, reps: int) -> None:
    help_s, import_s = [], []
    with tempdir() as d:
        for _ in range(max(3, reps * 2)):
            help_s.append(check(run([*LLMOPS, "--help"], cwd=d), "llmops --help").wall_s)
            import_s.append(check(run([PY, "-c", "import litellm"], cwd=d), "import litellm").wall_s)
        importtime = run([PY, "-X", "importtime", "-m", "llmops", "--help"], cwd=d)
    leaked = sorted({m for m in ("litellm", "ragas", "langfuse", "pydantic", "llama_cpp")
                     if re.search(rf"\|\s+{m}(\.|$)", importtime.stderr, re.M)})
    h, i = median(help_s), median(import_s)
    rep.raw["startup"] = {"help_s": help_s, "import_litellm_s": import_s}
    rep.add("start-up", "`llmops --help` wall time (median)", f"{h:.2f} s", "≤ 0.3 s", h <= 0.3)
    rep.add("start-up", "`llmops --help` / `python -c \"import litellm\"`", f"{100 * ratio(h, i):.0f}% "
            f"(import litellm: {i:.2f} s)", "≤ 15%", ratio(h, i) <= 0.15)
    rep.add("start-up", "heavy modules imported by `--help`", ", ".join(leaked) or "none", "none", not leaked)


# ---- throughput -------------------------------------------------------------------------------
def bench_throughput(rep: Report, quick: bool, reps: int) -> None:
    n, conc, latency = (600 if quick else 2000), 64, 0.05
    ideal = n / conc * latency
    kinds = ["aiohttp", "litellm", "harness", "harness2"] + (["before"] if BEFORE else [])
    got: dict[str, list[dict[str, Any]]] = {k: [] for k in kinds}
    with provider(latency) as p, tempdir() as d:
        make_project(d, n, p.port, tracing="off")
        for _ in range(reps):
            for kind in kinds:
                forget_state(d)
                loop_kind = "harness" if kind.startswith("harness") or kind == "before" else kind
                args = [PY, LOOPS, loop_kind, "--base", p.base, "--n", str(n), "--concurrency", str(conc),
                        "--project", str(d)]
                if kind == "harness2":
                    args += ["--workers", "2"]
                proc = check(run(args, cwd=d, env=before_env() if kind == "before" else None), kind)
                data = proc.data
                if data.get("answers") != n:
                    raise RuntimeError(f"{kind}: {data.get('answers')} answers of {n}: {proc.stderr[-2000:]}")
                stats = p.stats()
                data["max_in_flight"] = stats["max_in_flight"]
                got[kind].append(data)
                p.reset()
    rep.raw["throughput"] = {"n": n, "concurrency": conc, "latency_s": latency, "ideal_s": ideal, "runs": got}

    def per_rep(a: str, b: str) -> float:
        return median([ratio(x["run_s"], y["run_s"]) for x, y in zip(got[a], got[b], strict=True)])

    def cpu_ms(kind: str) -> float:
        return median([x["cpu_s"] / n * 1000 for x in got[kind]])

    floor, bare = median([x["run_s"] for x in got["aiohttp"]]), median([x["run_s"] for x in got["litellm"]])
    one = median([x["run_s"] for x in got["harness"]])
    title = f"throughput ({n} cases, c={conc}, {latency * 1000:.0f} ms)"
    rep.add(title, "transport floor (lean aiohttp loop) / ideal", fmt(ratio(floor, ideal)))
    rep.add(title, "bare `litellm.acompletion` loop / ideal",
            f"{fmt(ratio(bare, ideal))} ({cpu_ms('litellm'):.1f} ms CPU per call)")
    rep.add(title, "llmops harness, 1 process / ideal",
            f"{fmt(ratio(one, ideal))} ({cpu_ms('harness'):.1f} ms CPU per call)")
    rep.add(title, "llmops harness, 1 process / transport floor", fmt(per_rep("harness", "aiohttp")))
    r1 = per_rep("harness", "litellm")
    rep.add(title, "llmops harness, 1 process / bare litellm loop", fmt(r1), "≤ 1.0×", r1 <= 1.0)
    if BEFORE:
        rep.add(title, "before this work: llmops harness, 1 process / bare litellm loop",
                f"{fmt(per_rep('before', 'litellm'))} ({cpu_ms('before'):.1f} ms CPU per call)")
    r2 = per_rep("harness2", "litellm")
    rep.add(title, "llmops harness, `--workers 2` / bare litellm loop", fmt(r2), "≤ 0.6×", r2 <= 0.6)
    peak = max(x["max_in_flight"] for k in ("harness", "harness2") for x in got[k])
    rep.add(title, "most calls in flight at the provider (llmops runs)", f"{peak} of {conc}", f"≤ {conc}",
            peak <= conc)


# ---- whole process ---------------------------------------------------------------------------
def _promptfoo() -> list[str] | None:
    exe = PROMPTFOO_DIR / "node_modules" / ".bin" / "promptfoo"
    return [str(exe)] if exe.exists() else None


def _promptfoo_project(root: Path, n: int, base: str) -> None:
    root.mkdir(parents=True, exist_ok=True)
    with (root / "tests.jsonl").open("w") as f:
        for i in range(n):
            f.write(json.dumps({"vars": {"question": question(i), "expected": f"Case {i:06d}"}}) + "\n")
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "{{question}}"}]
    config = {
        "prompts": [{"id": "ask", "raw": json.dumps(messages)}],
        "providers": [{"id": f"openai:chat:{MODEL.split('/', 1)[1]}",
                       "config": {"apiBaseUrl": base, "apiKey": API_KEY, "temperature": 0, "max_tokens": 32}}],
        "defaultTest": {"assert": [{"type": "icontains", "value": "{{expected}}"},
                                   {"type": "javascript", "value": "output.length <= 400"},
                                   {"type": "regex", "value": "\\d+"}]},
        "tests": "file://tests.jsonl",
    }
    (root / "promptfooconfig.yaml").write_text(json.dumps(config, indent=1))  # JSON is YAML


def bench_whole(rep: Report, quick: bool, reps: int) -> None:
    sizes = (200, 600) if quick else (500, 2000)
    conc, latency = 64, 0.05
    pf = _promptfoo()
    out: dict[str, Any] = {}
    with provider(latency) as p, tempdir() as d:
        for n in sizes:
            proj = d / f"p{n}"
            proj.mkdir()
            make_project(proj, n, p.port)
            pf_dir = d / f"pf{n}"
            _promptfoo_project(pf_dir, n, p.base)
            times: dict[str, list[float]] = {"llmops": [], "llmops2": [], "litellm": [], "promptfoo": [],
                                             "before": []}
            pf_note = ""
            pf_crashes = 0
            for _ in range(reps):
                forget_state(proj)
                r = check(run([*LLMOPS, "run", "bench", "--no-progress", "--concurrency", str(conc)], cwd=proj),
                          "llmops run")
                _expect_units(r, n)
                times["llmops"].append(r.wall_s)
                forget_state(proj)
                r = check(run([*LLMOPS, "run", "bench", "--no-progress", "--concurrency", str(conc), "--workers",
                               "2"], cwd=proj), "llmops run --workers 2")
                _expect_units(r, n)
                times["llmops2"].append(r.wall_s)
                r = check(run([PY, LOOPS, "litellm", "--base", p.base, "--n", str(n), "--concurrency", str(conc)],
                              cwd=proj), "bare litellm script")
                times["litellm"].append(r.wall_s)
                if BEFORE:
                    forget_state(proj)
                    r = check(run([*llmops_cmd(True), "run", "bench", "--no-progress", "--concurrency", str(conc)],
                                  cwd=proj, env=before_env()), "llmops run (before)")
                    _expect_units(r, n)
                    times["before"].append(r.wall_s)
                if pf is not None:
                    shutil.rmtree(pf_dir / "cfg", ignore_errors=True)
                    before = p.stats()["by_status"].get("200", 0)
                    r = run([*pf, "eval", "-c", "promptfooconfig.yaml", "-j", str(conc), "--no-cache",
                             "--no-progress-bar", "--no-table"], cwd=pf_dir,
                            env={"PROMPTFOO_CONFIG_DIR": str(pf_dir / "cfg")})
                    answered = p.stats()["by_status"].get("200", 0) - before
                    if answered == n:  # every test was answered; the time is the whole process's
                        times["promptfoo"].append(r.wall_s)
                        if r.returncode != 0:
                            pf_crashes += 1
                    else:
                        pf_note = (f"promptfoo failed: exit {r.returncode}, {answered} of {n} calls; "
                                   f"{r.stderr.strip()[-200:]}")
                p.reset()
            out[n] = times
            title = f"whole process (`llmops run`, {n} cases, c={conc})"
            lo, lo2, bare = median(times["llmops"]), median(times["llmops2"]), median(times["litellm"])
            rep.add(title, "`llmops run` / bare litellm script", f"{fmt(ratio(lo, bare))} ({lo:.1f} s vs {bare:.1f} s)",
                    "< 1.0×", lo < bare)
            rep.add(title, "`llmops run --workers 2` / bare litellm script",
                    f"{fmt(ratio(lo2, bare))} ({lo2:.1f} s)", "< 1.0×", lo2 < bare)
            if times["before"]:
                b = median(times["before"])
                rep.add(title, "before this work: `llmops run` / bare litellm script",
                        f"{fmt(ratio(b, bare))} ({b:.1f} s)")
            if times["promptfoo"]:
                pfs = median(times["promptfoo"])
                rep.add(title, "`llmops run` / `promptfoo eval` (-j 64, no cache)",
                        f"{fmt(ratio(lo, pfs))} (promptfoo {pfs:.1f} s = {fmt(ratio(pfs, bare))} bare litellm)",
                        "< 1.0×", lo < pfs)
            else:
                rep.add(title, "`llmops run` / `promptfoo eval`", "not measured: " + (
                    pf_note or f"promptfoo not installed under {PROMPTFOO_DIR}"), "< 1.0×", None)
            if pf_crashes:
                rep.notes.append(f"promptfoo {_pf_version()} ({n} cases): {pf_crashes} of {len(times['promptfoo'])} "
                                 "runs answered every test, then exited 1 on a logger 'write after end' error "
                                 "(its results were written; the time is counted to its exit)")
            if pf_note:
                rep.notes.append(pf_note)
    rep.raw["whole"] = out


def _expect_units(proc: Proc, n: int) -> None:
    if f"units {n} " not in proc.stdout:
        raise RuntimeError(f"expected {n} units:\n{proc.stdout[-1500:]}\n{proc.stderr[-1500:]}")


def _pf_version() -> str:
    pkg = PROMPTFOO_DIR / "node_modules" / "promptfoo" / "package.json"
    try:
        return str(json.loads(pkg.read_text())["version"])
    except (OSError, ValueError, KeyError):
        return "?"


# ---- replay -------------------------------------------------------------------------------------
def bench_replay(rep: Report, quick: bool, reps: int) -> None:
    n = 2000
    times: dict[str, list[float]] = {"auto": [], "off": [], "local": []}
    if BEFORE:
        times["before"] = []
    with provider(0.05) as p, tempdir() as d:
        make_project(d, n, p.port)
        check(run([*LLMOPS, "run", "bench", "--no-progress"], cwd=d), "recording run")
        p.reset()
        for _ in range(max(3, reps)):
            for tracing in times:
                for old in (d / ".llmops").glob("traces.sqlite*"):  # each run starts alike
                    old.unlink()
                before = tracing == "before"
                env = before_env() if before else {"LLMOPS_TRACING": tracing}
                r = check(run([*llmops_cmd(before), "run", "bench", "--no-progress", "--cache", "read-only"],
                              cwd=d, env=env), "replay")
                _expect_units(r, n)
                times[tracing].append(r.wall_s)
        calls = p.stats()["requests"]
        imp = run([PY, "-X", "importtime", "-m", "llmops", "run", "bench", "--no-progress", "--cache", "read-only"],
                  cwd=d)
        imported = bool(re.search(r"\|\s+litellm(\.|$)", imp.stderr, re.M))
    rep.raw["replay"] = {"n": n, "times": times}
    title = f"replay ({n} cases, fully cached, `--cache read-only`)"
    t = median(times["auto"])
    rep.add(title, "whole process, default settings (`tracing = auto`: a replay records no traces)",
            f"{t:.2f} s", "< 1.5 s", t < 1.5)
    t = median(times["off"])
    rep.add(title, "whole process, `LLMOPS_TRACING=off`", f"{t:.2f} s", "< 1.5 s", t < 1.5)
    t = median(times["local"])
    rep.add(title, "whole process, replay traced on request (`LLMOPS_TRACING=local`: 5 records per unit)",
            f"{t:.2f} s", "", None)
    if BEFORE:
        rep.add(title, "before this work: whole process, default tracing", f"{median(times['before']):.2f} s")
    rep.add(title, "provider calls / litellm imported", f"{calls} / {'yes' if imported else 'no'}", "0 / no",
            calls == 0 and not imported)


# ---- rate limits ------------------------------------------------------------------------------
def bench_ratelimit(rep: Report, quick: bool, reps: int) -> None:
    rps = 100.0
    n = 300 if quick else 1000
    before: dict[str, Any] = {}
    with provider(0.05, rate_limit_rps=rps) as p, tempdir() as d:
        make_project(d, n, p.port, tracing="off", cache="off")
        args = [PY, LOOPS, "harness", "--n", str(n), "--concurrency", "64", "--project", str(d)]
        if BEFORE:
            rb = check(run(args, cwd=d, env=before_env()), "harness under a rate limit (before)")
            before = {"harness": rb.data, "server": p.stats()}
            p.reset()
            time.sleep(1.0)  # the bucket refills
        r = check(run(args, cwd=d), "harness under a rate limit")
        stats = p.stats()
    data = r.data
    rate = stats["ok_rate"]
    rep.raw["ratelimit"] = {"rps": rps, "n": n, "harness": data, "server": stats}
    title = f"rate limit ({n} cases, c=64, server allows {rps:.0f} req/s, 429 + retry-after beyond)"
    answered = data.get("answers") == n and data.get("errors") == 0
    rep.add(title, "cases answered", f"{data.get('answers')} of {n}, {data.get('errors')} errors", "all",
            answered)
    rep.add(title, "achieved rate / allowed rate", f"{fmt(ratio(rate, rps))} ({rate:.0f} req/s)", "0.9× – 1.0×",
            0.9 <= ratio(rate, rps) <= 1.02)
    rep.add(title, "429s received per case", f"{ratio(stats['throttled'], n):.2f} ({stats['throttled']} of "
            f"{stats['requests']} requests)")
    rep.add(title, "run time / ideal (n ÷ allowed rate)", fmt(ratio(data["run_s"], n / rps)))
    if before:
        bh, bs = before["harness"], before["server"]
        rep.add(title, "before this work: answered; rate / allowed; 429s per case",
                f"{bh.get('answers')} of {n} ({bh.get('errors')} errors); {fmt(ratio(bs['ok_rate'], rps))}; "
                f"{ratio(bs['throttled'], n):.2f}")


# ---- tracing ----------------------------------------------------------------------------------
def _closed_port() -> int:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


def bench_tracing(rep: Report, quick: bool, reps: int) -> None:
    n = 600 if quick else 1500
    reps = reps if quick else max(reps, 4)  # a few percent needs more pairs than the rest
    modes = ["off", "local", "langfuse"]
    down = f"http://127.0.0.1:{_closed_port()}"
    kinds = ("client", "harness") + (("before",) if BEFORE else ())
    got: dict[str, dict[str, list[dict[str, Any]]]] = {k: {m: [] for m in modes} for k in kinds}
    with provider(0.05) as p, tempdir() as d:
        make_project(d, n, p.port, cache="off")
        for rep_index in range(reps):
            for kind in kinds:
                # Rotate the order each repetition, so that no mode always runs first or last
                # (a drifting machine would otherwise bias one mode), and reset the double's stats.
                shift = rep_index % len(modes)
                for mode in modes[shift:] + modes[:shift]:
                    p.reset()
                    forget_state(d)
                    env = before_env() if kind == "before" else {}
                    if mode == "langfuse":
                        env.update({"LANGFUSE_PUBLIC_KEY": "pk-lf-bench", "LANGFUSE_SECRET_KEY": "sk-lf-bench",
                                    "LANGFUSE_HOST": down})
                    loop_kind = "client" if kind == "before" else kind
                    r = check(run([PY, LOOPS, loop_kind, "--base", p.base, "--n", str(n), "--concurrency", "64",
                                   "--project", str(d), "--tracing", mode], cwd=d, env=env), f"{kind} {mode}")
                    if r.data.get("answers") != n:
                        raise RuntimeError(f"{kind} tracing {mode}: {r.data}\n{r.stderr[-2000:]}")
                    got[kind][mode].append(r.data)
    rep.raw["tracing"] = got
    labels = {"client": f"tracing, per LLM call ({n} calls through LLMClient, c=64, 50 ms)",
              "harness": f"tracing, per eval unit ({n} cases: a trace, its generation, 3 scores)",
              "before": "tracing, per LLM call, before this work"}
    for kind in kinds:
        what = labels[kind]
        runs = got[kind]
        for mode, label in (("local", "local trace store"), ("langfuse", "Langfuse exporter, host down")):
            wall = median([ratio(x["run_s"], y["run_s"]) for x, y in zip(runs[mode], runs["off"], strict=True)]) - 1
            cpu = median([ratio(x["cpu_s"], y["cpu_s"]) for x, y in zip(runs[mode], runs["off"], strict=True)]) - 1
            flush = median([x.get("flush_s", 0.0) for x in runs[mode]])
            direct = [x["trace_cpu_s"] / max(1e-9, x["cpu_s"] - x["trace_cpu_s"])
                      for x in runs[mode] if "trace_cpu_s" in x]
            if direct:  # the verdict: tracing's own CPU, timed where it runs (see bench/loops.py)
                verdict = kind == "client"  # "before" rows are history, not judged
                rep.add(what, f"{label}: tracing's own CPU / the rest of the call's CPU (timed in place: "
                        "observer + writer and exporter threads)", f"{100 * median(direct):+.1f}%",
                        "≤ 5%" if verdict else "", median(direct) <= 0.05 if verdict else None)
            rep.add(what, f"{label}: whole run vs no tracing (CPU; run time){'; for the record' if direct else ''}",
                    f"{100 * cpu:+.1f}%; {100 * wall:+.1f}% (then {flush:.2f} s to flush)")


# ---- memory ------------------------------------------------------------------------------------
def bench_memory(rep: Report, quick: bool, reps: int) -> None:
    sizes = (1000, 2000, 4000) if quick else (5000, 10000, 20000)
    peaks = {}
    with provider(0.005) as p, tempdir() as d:
        for n in sizes:
            proj = d / f"m{n}"
            proj.mkdir()
            make_project(proj, n, p.port)
            r = check(run([*LLMOPS, "run", "bench", "--no-progress", "--concurrency", "64"], cwd=proj, timeout=1800),
                      f"memory {n}")
            _expect_units(r, n)
            peaks[n] = r.maxrss_mb
            shutil.rmtree(proj, ignore_errors=True)
        # What the suite itself holds: its validated cases stay in memory for the run (units are
        # planned from them), so that part grows with the file by design; the run must add nothing.
        suite = run([PY, "-c", SUITE_MEMORY, str(d / "suite"), str(sizes[-1]), str(BENCH)], timeout=600)
    suite_mb = float(suite.data.get("held_mb_per_1000", "nan"))
    rep.raw["memory"] = {"peaks": peaks, "suite_held_mb_per_1000": suite_mb}
    title = "memory (peak RSS of `llmops run`, results streamed to the store)"
    values = " / ".join(f"{peaks[n]:.0f} MB" for n in sizes)
    big = peaks[sizes[-1]]
    slope = (peaks[sizes[-1]] - peaks[sizes[0]]) / (sizes[-1] - sizes[0]) * 1000
    rep.add(title, f"{' / '.join(f'{n // 1000}k' for n in sizes)} cases", values, "< 300 MB", big < 300)
    rep.add(title, "growth per 1,000 cases", f"{slope:.1f} MB ({suite_mb:.1f} MB of it: the 1,000 cases "
            "themselves, loaded and validated)", "flat")
    rep.add(title, "growth per 1,000 cases beyond the loaded cases (the run's own memory)",
            f"{slope - suite_mb:.1f} MB", "≈ 0 (< 0.5 MB)", slope - suite_mb < 0.5)


SUITE_MEMORY = r"""
import json, sys, tracemalloc
from pathlib import Path
sys.path.insert(0, sys.argv[3])  # bench/, for make_project
from _common import make_project
from llmops.evalsets.loader import load_suite
root, n = Path(sys.argv[1]), int(sys.argv[2])
root.mkdir(parents=True, exist_ok=True)
make_project(root, n, 1)
tracemalloc.start()
suite = load_suite(root / "evalsets" / "bench.yaml")
held, peak = tracemalloc.get_traced_memory()
print(json.dumps({"held_mb_per_1000": held / 1e6 / n * 1000, "peak_mb_per_1000": peak / 1e6 / n * 1000}))
"""


# ---- embedded model ---------------------------------------------------------------------------
# Raw llama-cpp-python and llmops run the very same loaded model with the same arguments (llmops
# passes temperature, max_tokens and seed exactly as below; same chat template, threads, context
# and KV-cache reuse), alternating. Both paths go through one timer around
# `create_chat_completion`, so within each llmops call the time spent outside llama-cpp (litellm,
# event loop, thread hop, lock) is measured directly: that is the verdict. Comparing two separate
# calls is left as a cross-check, because on these 2 shared cores other benchmarks slow whichever
# call they overlap: wall-clock ratios of single pairs spread ±20%, and even a call's own CPU time
# (cache and core sharing) ±4%, between two identical raw calls.
EMBED = r"""
import json, sys, time
from llmops.config import Settings
from llmops.llm.client import LLMClient
from llmops.llm.local import resolve_local_path, runtime
pairs = int(sys.argv[1])
messages = [{"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Write a short paragraph about the history of the bicycle."}]
params = {"temperature": 0.0, "max_tokens": 128}
client = LLMClient(Settings(cache="off"))
client.complete(messages, "local/smollm2", params)  # loads the model (and litellm) once
llama, _lock = runtime()._load(resolve_local_path("smollm2"))
generate = llama.create_chat_completion
inside = []
def timed(**kw):  # what both paths call: the time llama-cpp itself takes
    t = time.perf_counter()
    try:
        return generate(**kw)
    finally:
        inside.append(time.perf_counter() - t)
llama.create_chat_completion = timed  # local.py looks the method up on the instance per call
timed(messages=messages, seed=0, **params)  # warm-up of the raw path
out = {k: [] for k in ("raw", "llmops", "raw_cpu", "llmops_cpu", "outside_s", "call_s", "tokens")}
for i in range(pairs):
    for who in (("raw", "llmops") if i % 2 == 0 else ("llmops", "raw")):
        t, c = time.perf_counter(), time.process_time()
        if who == "raw":
            n = timed(messages=messages, seed=0, **params)["usage"]["completion_tokens"]
        else:
            n = client.complete(messages, "local/smollm2", params).usage.completion_tokens
        wall, cpu = time.perf_counter() - t, time.process_time() - c
        out[who].append(n / wall)
        out[who + "_cpu"].append(n / cpu)
        out["tokens"].append(n)
        if who == "llmops":
            out["outside_s"].append(wall - inside[-1])
            out["call_s"].append(wall)
print(json.dumps(out))
"""


def _middle_half(values: list[float]) -> str:
    """The interquartile range of per-pair ratios: how far one pair can be trusted on this machine."""
    if len(values) < 4:
        return ""
    q = statistics.quantiles(values, n=4)
    return f"; middle half {q[0]:.2f}–{q[2]:.2f}×"


def bench_embedded(rep: Report, quick: bool, reps: int) -> None:
    pairs = 4 * reps  # each pair is 2 generations of a few seconds
    with tempdir() as d:
        r = run([PY, "-c", EMBED, str(pairs)], cwd=d, timeout=900)
    title = "embedded model (SmolLM2-135M, temperature 0, same prompt)"
    if r.returncode != 0 or not r.data:
        rep.add(title, "tokens/s through llmops / raw llama-cpp-python",
                f"not measured: {r.stderr.strip().splitlines()[-1:] or r.returncode}", "≥ 0.95×", None)
        return
    data = r.data
    rep.raw["embedded"] = data
    counts = sorted(set(data["tokens"]))
    # tokens/s over different token counts would compare different work: fail and say so.
    same = len(counts) == 1
    tokens = f"{counts[0]} tokens" if same else f"UNEQUAL token counts {counts}"
    # Same call: tokens/s through complete() over tokens/s of the llama-cpp call it made.
    within = median([1 - o / c for o, c in zip(data["outside_s"], data["call_s"], strict=True)])
    rep.add(title, f"tokens/s through llmops / raw llama-cpp, within each call ({tokens}, {pairs} calls)",
            f"{within:.3f}× ({median(data['outside_s']) * 1000:.1f} ms of {median(data['call_s']):.1f} s "
            "outside llama-cpp: litellm, event loop, thread hop, lock)", "≥ 0.95× (≤ 5% overhead)",
            within >= 0.95 and same)
    # Cross-checks on separate calls: generation itself must not be slower on llmops's thread.
    cpu = [ratio(o, w) for o, w in zip(data["llmops_cpu"], data["raw_cpu"], strict=True)]
    # Separate calls cannot resolve 5% here (three runs: 0.94×, 0.94×, 1.05×, each with a middle
    # half spanning ±10%): shown for the record, like the wall-clock row; the verdict is above.
    rep.add(title, f"tokens per CPU-second of the process, llmops / raw (median of {pairs} alternating pairs; "
            "for the record)", f"{fmt(median(cpu))} ({median(data['llmops_cpu']):.0f} vs "
            f"{median(data['raw_cpu']):.0f}{_middle_half(cpu)})", "≈ 1× (shared cores: noisy)", None)
    wall = [ratio(o, w) for o, w in zip(data["llmops"], data["raw"], strict=True)]
    rep.add(title, f"wall-clock tokens/s, llmops / raw (median of {pairs} alternating pairs; for the record)",
            f"{fmt(median(wall))} ({median(data['llmops']):.0f} vs {median(data['raw']):.0f} tokens/s"
            f"{_middle_half(wall)})", "≈ 1× (shared cores: noisy)", None)


SECTIONS: dict[str, Callable[[Report, bool, int], None]] = {
    "startup": bench_startup, "throughput": bench_throughput, "whole": bench_whole, "replay": bench_replay,
    "ratelimit": bench_ratelimit, "tracing": bench_tracing, "memory": bench_memory, "embedded": bench_embedded,
}


def table(rep: Report, command: str, started: float) -> str:
    lines = [f"Command: `{command}` · date: {datetime.date.today().isoformat()} · "
             f"{os.cpu_count()} cores · Python {platform.python_version()} · "
             f"load average at start {os.getloadavg()[0]:.1f} · took {time.time() - started:.0f} s", "",
             "| Benchmark | Measure | Result | Target | |", "|---|---|---|---|---|"]
    last = None
    for row in rep.rows:
        section = row.section if row.section != last else ""
        last = row.section
        lines.append(f"| {section} | {row.measure} | {row.result} | {row.target} | {row.status()} |")
    if rep.notes:
        lines += ["", *[f"- {n}" for n in rep.notes]]
    return "\n".join(lines) + "\n"


def write_readme(text: str) -> None:
    readme = BENCH / "README.md"
    body = readme.read_text()
    start, end = "<!-- results:start -->", "<!-- results:end -->"
    if start not in body:
        body += f"\n{start}\n{end}\n"
    before, rest = body.split(start, 1)
    _, after = rest.split(end, 1)
    readme.write_text(f"{before}{start}\n{text}{end}{after}")


def _compile_bytecode(*packages: Path) -> None:
    """Write the packages' bytecode, as ``pip install`` does.

    An editable install (and a machine with PYTHONDONTWRITEBYTECODE set, as this one) would
    otherwise compile every llmops module from source in every measured process.
    """
    import compileall

    for package in packages:
        if package.is_dir():
            compileall.compile_dir(str(package), quiet=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, one repetition (~3 min)")
    parser.add_argument("--only", default=None, help="comma-separated sections")
    parser.add_argument("--reps", type=int, default=None, help="interleaved repetitions (default 3; quick 1)")
    parser.add_argument("--write", action="store_true", help="write the table into bench/README.md")
    parser.add_argument("--json", default=None, metavar="FILE", help="also dump every measurement as JSON")
    parser.add_argument("--before", default=None, metavar="SRC",
                        help="also run an older llmops source tree (e.g. a `git worktree`) for before/after rows")
    args = parser.parse_args()
    global BEFORE
    BEFORE = Path(args.before).resolve() if args.before else None
    reps = args.reps or (1 if args.quick else 3)
    chosen = args.only.split(",") if args.only else list(SECTIONS)
    unknown = [s for s in chosen if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown sections {unknown}; known: {', '.join(SECTIONS)}")
    started = time.time()
    _compile_bytecode(REPO / "llmops", *([BEFORE / "llmops"] if BEFORE else []))
    rep = Report()
    for name in chosen:
        print(f"== {name}", flush=True)
        t = time.time()
        SECTIONS[name](rep, args.quick, reps)
        print(f"   ({time.time() - t:.0f} s)", flush=True)
    command = "python bench/run.py" + (" --quick" if args.quick else "") + (
        f" --only {args.only}" if args.only else "") + (f" --reps {args.reps}" if args.reps else "") + (
        f" --before {args.before}" if args.before else "")
    text = table(rep, command, started)
    print()
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": [r.__dict__ for r in rep.rows], "raw": rep.raw}, indent=1,
                                              default=str))
    if args.write:
        write_readme(text)


if __name__ == "__main__":
    main()
