"""Many suites at once against one run store and one response cache.

Processes and threads write to the same SQLite files at the same time; afterwards both files
pass SQLite's integrity check, every run holds exactly its own units, and the cache holds every
distinct answer once (no lost write, no torn row).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

from reliability_helpers import echo_prompt

from llmops.config import Settings
from llmops.llm.cache import ResponseCache
from llmops.runner.engine import run_suite
from llmops.runner.results import RunResult
from llmops.runner.store import RunStore

WORKER = Path(__file__).with_name("concurrency_worker.py")
PROCESSES = 6
CASES = 30
REPEAT = 2


def _suites(project: Path, count: int) -> list[Path]:
    """Suites that overlap pairwise: suite i shares half of its cases with suite i+1 (same cache keys)."""
    echo_prompt(project)
    paths = []
    for i in range(count):
        ids = range(i * CASES // 2, i * CASES // 2 + CASES)
        cases = "".join(f"  - {{id: c{j}, inputs: {{q: 'q{j}'}}, expected: 'q{j}'}}\n" for j in ids)
        path = project / "evalsets" / f"s{i}.yaml"
        path.write_text(f"name: s{i}\nprompt: echo@1\nmodels: [fake/x]\nrepeat: {REPEAT}\nevaluators: [contains]\n"
                        f"cases:\n{cases}", encoding="utf-8")
        paths.append(path)
    return paths


def _integrity(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


def test_many_processes_share_one_store_and_one_cache(project: Path) -> None:
    suites = _suites(project, PROCESSES)
    log = project / "paid.jsonl"
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    procs = [subprocess.Popen([sys.executable, str(WORKER), str(project), str(s), f"run-{i}", str(log)],
                              cwd=project, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for i, s in enumerate(suites)]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()[-3000:]

    store_path, cache_path = project / ".llmops" / "runs.sqlite", project / ".llmops" / "cache.sqlite"
    assert _integrity(store_path) == "ok" and _integrity(cache_path) == "ok"
    store = RunStore(store_path)
    for i in range(PROCESSES):
        results = store.results(f"run-{i}")
        keys = Counter(r.key for r in results)
        assert len(keys) == CASES * REPEAT and set(keys.values()) == {1}
        assert all(r.status == "pass" for r in results)
        assert {r.case_id for r in results} == {f"c{j}" for j in range(i * CASES // 2, i * CASES // 2 + CASES)}
        assert store.manifest(f"run-{i}").status == "completed"
    distinct = (PROCESSES + 1) * CASES // 2 * REPEAT  # distinct (question, repeat) requests over all suites
    assert len(ResponseCache(cache_path)) == distinct  # every answer written, none lost or duplicated
    paid = Counter(json.loads(line)["key"] for line in log.read_text().splitlines())
    conn = sqlite3.connect(cache_path)
    cached_keys = {row[0] for row in conn.execute("SELECT key FROM responses")}
    conn.close()
    assert set(paid) == cached_keys  # every paid answer is in the cache, and nothing else is
    # Overlapping runs may race for a request neither has cached yet; each is paid at most once per run.
    assert max(paid.values()) <= 2


def test_many_threads_share_one_store_object(project: Path, settings: Settings) -> None:
    suites = _suites(project, 4)
    store = RunStore(project / ".llmops" / "runs.sqlite")
    from llmops.llm import fake

    fake.script("fake/x", responder=lambda m, p: f"echo: {m[-1]['content']}")
    runs: dict[int, RunResult] = {}
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            runs[i] = run_suite(suites[i], settings=settings, store=store, progress=False, run_id=f"t-{i}")
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(suites))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    for i, run in runs.items():
        stored = store.results(f"t-{i}")
        assert Counter(r.key for r in stored) == Counter(r.key for r in run.results)
        assert len(stored) == CASES * REPEAT and all(r.status == "pass" for r in stored)
    assert _integrity(store.path) == "ok"
