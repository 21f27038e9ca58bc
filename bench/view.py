"""`llmops view` on real sizes: 10,000 runs and a run of 20,000 cases.

Builds a run store of that size (synthetic results written through RunStore, as a run writes
them), serves it with uvicorn on a free loopback port in a child process, and measures over real
HTTP the time to first byte of each page (median of 5) and the server's peak RSS. Then it
measures whether a viewer polling a run page slows a writer adding results to the same store
(writer time with and without the reader, interleaved, median of the ratios).

    python bench/view.py              # writes nothing; prints a Markdown table
    python bench/view.py --runs 2000 --cases 4000   # smaller
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llmops.evaluators.base import Score
from llmops.runner.results import Manifest, UnitResult
from llmops.runner.store import RunPlan, RunStore

PYPROJECT = '[project]\nname = "b"\nversion = "0"\n[tool.llmops]\ndefault_model = "fake/echo"\n'


def unit(case: str, prompt: str, status: str, i: int) -> UnitResult:
    return UnitResult(case_id=case, prompt=prompt, model="openai/gpt-4o-mini", status=status,  # type: ignore[arg-type]
                      output=f"answer {i} " + "lorem ipsum dolor sit amet " * 8, prompt_tokens=120,
                      completion_tokens=40, cost_usd=0.0001, latency_s=0.4 + (i % 7) / 10,
                      scores=[Score(name="has_answer", value=1.0 if status == "pass" else 0.0, status=status,
                                    reason="found" if status == "pass" else "missing", evaluator="contains")])


def build(root: Path, runs: int, cases: int) -> str:
    (root / "pyproject.toml").write_text(PYPROJECT, encoding="utf-8")
    store = RunStore(root / ".llmops" / "runs.sqlite")
    plan = RunPlan(suite_path="evalsets/s.yaml", models=["openai/gpt-4o-mini"], prompts=["p@1"], repeat=1, seed=0)
    for r in range(runs):
        rid = f"small-{r:05d}"
        m = Manifest(run_id=rid, suite=f"suite{r % 5}", suite_path="evalsets/s.yaml", llmops_version="0",
                     python_version="3", units=4, started_at=1.7e9 + r, ended_at=1.7e9 + r + 30, status="completed",
                     prompts={"p@1": "h"})
        store.create_run(m, plan)
        for i in range(4):
            store.add_result(rid, unit(f"c{i}", "p@1", "fail" if (r + i) % 9 == 0 else "pass", i), hold=True)
    big = "big-run"
    m = Manifest(run_id=big, suite="big", suite_path="evalsets/big.yaml", llmops_version="0", python_version="3",
                 units=cases * 2, started_at=1.8e9, ended_at=1.8e9 + 600, status="completed")
    store.create_run(m, plan)
    for c in range(cases):
        for prompt in ("p@1", "p@2"):
            status = "fail" if (c * 7 + len(prompt)) % 11 == 0 else "pass"
            store.add_result(big, unit(f"case-{c:06d}", prompt, status, c), hold=True)
    store.close()
    return big


def ttfb(port: int, path: str) -> float:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    start = time.perf_counter()
    conn.request("GET", path)
    response = conn.getresponse()
    first = time.perf_counter() - start
    response.read()
    conn.close()
    assert response.status == 200, (path, response.status)
    return first


def serve(root: Path) -> tuple[subprocess.Popen[str], int]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    proc = subprocess.Popen([sys.executable, "-m", "llmops", "view", "--port", "0"], cwd=root, env=env,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    return proc, int(line.split(" at http://127.0.0.1:", 1)[1].split("/", 1)[0])


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def writer_slowdown(root: Path, port: int, pause: float, n: int = 1500, pairs: int = 3) -> float:
    """Median ratio: writer time with a viewer polling the run page (every ``pause`` s) / without."""
    ratios = []
    for p in range(pairs):
        times = []
        for with_reader in (False, True):
            store = RunStore(root / ".llmops" / "runs.sqlite")
            rid = f"live-{pause}-{p}-{with_reader}"
            store.create_run(Manifest(run_id=rid, suite="live", suite_path="x", llmops_version="0",
                                      python_version="3", units=n), RunPlan(suite_path="x", models=["m"],
                                                                            prompts=["p@1"], repeat=1, seed=0))
            stop = threading.Event()

            def poll(rid: str = rid, stop: threading.Event = stop) -> None:
                while not stop.is_set():
                    ttfb(port, f"/runs/{rid}")
                    ttfb(port, f"/api/runs/{rid}/progress")
                    stop.wait(pause)

            reader = threading.Thread(target=poll) if with_reader else None
            if reader:
                reader.start()
            start = time.perf_counter()
            for i in range(n):
                store.add_result(rid, unit(f"c{i:05d}", "p@1", "pass", i))  # committed one by one, as a live run
            times.append(time.perf_counter() - start)
            stop.set()
            if reader:
                reader.join()
            store.close()
        ratios.append(times[1] / times[0])
    return statistics.median(ratios)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--cases", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        big = build(root, args.runs, args.cases)
        size = (root / ".llmops" / "runs.sqlite").stat().st_size / 1e6
        print(f"built {args.runs} runs + a run of {args.cases} cases x 2 variants in "
              f"{time.perf_counter() - t0:.0f} s ({size:.0f} MB store)")
        proc, port = serve(root)
        try:
            pages = ["/runs", "/runs?outcome=failures", "/runs?suite=suite3&offset=5000", "/api/runs",
                     f"/runs/{big}", f"/runs/{big}?offset=19900", f"/runs/{big}?failures=1",
                     f"/runs/{big}?q=case-019999",
                     f"/runs/{big}/cell?case=case-000007&prompt=p%401&model=openai%2Fgpt-4o-mini",
                     f"/api/runs/{big}/progress", f"/compare?a={big}", f"/compare?a={big}&offset=100"]
            rows = []
            for path in pages:
                ttfb(port, path)  # warm
                rows.append((path, statistics.median(ttfb(port, path) for _ in range(5))))
            start = time.perf_counter()
            while True:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
                conn.request("GET", f"/api/compare/statistics?a={big}")
                status = conn.getresponse().status
                conn.close()
                if status == 200:
                    break
                time.sleep(0.5)
            stats_s = time.perf_counter() - start
            rss = peak_rss_mb(proc.pid)
            polled = writer_slowdown(root, port, pause=2.0)  # what the page's script does
            hammered = writer_slowdown(root, port, pause=0.0)  # a reader that never pauses
        finally:
            proc.terminate()
            proc.wait()
    print(f"\n| page ({args.runs} runs; run of {args.cases} cases x 2 variants) | time to first byte (median of 5) |")
    print("|---|---|")
    for path, t in rows:
        print(f"| `{path}` | {t * 1000:.0f} ms |")
    print(f"\npaired statistics of the {args.cases}-case comparison (compare_run, computed off the request "
          f"path): ready {stats_s:.0f} s after the page")
    print(f"server peak RSS after all pages and the statistics: {rss:.0f} MB")
    print("writer adding results one commit each, with a viewer on its run page / without: "
          f"{polled:.2f}x polling every 2 s (as the page does), {hammered:.2f}x with requests back to back")


if __name__ == "__main__":
    main()
