"""Crash safety: SIGKILL at random points, and damaged run stores, caches, baselines and lock files.

The single realistic SIGKILL test (through LiteLLM) lives in tests/runner/test_kill_resume.py;
here the same worker runs in its ``light`` mode (no litellm import, so a restart costs well under
a second) and is killed many times at random points of one run: during start-up, while results
stream in, while the manifest is written. Resuming must finish it with exactly one result per
unit and without paying twice for a provider call that had completed.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from llmops.cli import main
from llmops.config import Settings
from llmops.errors import PromptError, StoreError
from llmops.llm import fake
from llmops.llm.cache import ResponseCache
from llmops.llm.types import Completion
from llmops.prompts import PromptRegistry, check_lock, update_lock
from llmops.regression.baseline import read_baseline, write_baseline
from llmops.runner.engine import run_suite
from llmops.runner.store import RunStore

WORKER = Path(__file__).resolve().parents[1] / "runner" / "kill_worker.py"
N_CASES = 12
UNITS = N_CASES * 2  # the worker runs repeat=2


def _kill_suite(project: Path) -> None:
    cases = "\n".join(f"  - {{id: k{i}, inputs: {{question: 'q{i}'}}, expected: 'a{i % 8}'}}"
                      for i in range(N_CASES))
    # Each kill costs the run at most 3 units, so that most of the KILLS land mid-run.
    (project / "evalsets" / "kill.yaml").write_text(
        "prompt: rag_answer@2\nmodels: [fake/slow]\nevaluators: [contains]\ncases:\n" + cases + "\n",
        encoding="utf-8")


def _spawn(project: Path, log: Path, **kill: float) -> subprocess.Popen[bytes]:
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "KILL_WORKER_DELAY": "0.03",
           **{f"KILL_AFTER_{k.upper()}": str(v) for k, v in kill.items()}}
    return subprocess.Popen([sys.executable, str(WORKER), str(project), str(log), "auto", "light"],
                            cwd=project, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _done(store_path: Path) -> int:
    if not store_path.exists():
        return 0
    conn = sqlite3.connect(store_path)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM results").fetchone()[0])
    except sqlite3.OperationalError:  # killed before the schema was created
        return 0
    finally:
        conn.close()


def _integrity_ok(path: Path) -> bool:
    conn = sqlite3.connect(path)
    try:
        return bool(conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok")
    finally:
        conn.close()


KILLS = 12


def test_sigkill_at_many_random_points_then_resume_exactly_once(project: Path) -> None:
    _kill_suite(project)
    store_path = project / ".llmops" / "runs.sqlite"
    cache_path = project / ".llmops" / "cache.sqlite"
    log = project / "calls.jsonl"
    rng = random.Random(20261126)
    kills = 0
    for attempt in range(KILLS + 1):
        remaining = UNITS - _done(store_path)
        point = rng.choice(["seconds", "results", "calls"])
        seconds, k = rng.uniform(0.0, 0.3), rng.randint(1, max(1, min(3, remaining)))
        if attempt == KILLS:
            kill: dict[str, float] = {}  # the last resume is left to finish
        elif point == "seconds" or remaining == 0:
            kill = {"seconds": round(seconds, 3)}  # store opening, planning, the first units
        elif point == "results":
            kill = {"results": k}  # right after a unit result was committed
        else:
            kill = {"calls": k}  # a call was paid and cached, its unit result not yet stored
        proc = _spawn(project, log, **kill)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode in (0, -signal.SIGKILL), err.decode()[-3000:]
        kills += proc.returncode == -signal.SIGKILL
        # Whatever the moment of death, both SQLite files stay intact.
        for path in (store_path, cache_path):
            if path.exists():
                assert _integrity_ok(path), path
        if proc.returncode == 0:
            break
    assert proc.returncode == 0, "the last resume did not finish the run"
    assert kills >= KILLS * 2 // 3, f"only {kills} kills landed: the test did not exercise crashes"

    store = RunStore(store_path)
    results = store.results("killed-run")
    keys = Counter(r.key for r in results)
    assert len(keys) == UNITS and set(keys.values()) == {1}  # exactly one result per unit
    assert all(r.status == "pass" for r in results)
    assert store.manifest("killed-run").status == "completed"
    calls = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    paid = Counter(c["key"] for c in calls if not c["cached"])
    assert max(paid.values()) == 1, "a completed provider call was paid for twice"
    assert len(paid) == UNITS


# ---- damaged files: detected, reported with what to do, never silently used ----------------------
def _small_run(project: Path, settings: Settings) -> str:
    (project / "evalsets" / "tiny.yaml").write_text(
        "prompt: rag_answer@2\nmodels: [fake/echo]\nevaluators: [contains]\ncases:\n"
        + "".join(f"  - {{id: t{i}, inputs: {{question: 'q{i}'}}, expected: 'q{i}'}}\n" for i in range(30)),
        encoding="utf-8")
    run = run_suite("evalsets/tiny.yaml", settings=settings, progress=False)
    return run.manifest.run_id


def _checkpoint(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def _damage(path: Path, how: str) -> None:
    _checkpoint(path)
    data = path.read_bytes()
    if how == "garbage":
        path.write_bytes(b"this is not a database\n" * 50)
    elif how == "truncated":
        path.write_bytes(data[: len(data) // 2 + 123])
    elif how == "header":
        path.write_bytes(data[:16] + b"\xff" * 84 + data[100:])
    elif how == "pages":  # scribble over the b-tree pages, keep the header
        mid = len(data) // 2
        path.write_bytes(data[:4096] + bytes(rng_bytes(len(data) - 4096 - mid)) + data[len(data) - mid:])
    for suffix in ("-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)


def rng_bytes(n: int) -> bytes:
    return random.Random(n).randbytes(max(0, n))


DAMAGE = ["garbage", "truncated", "header", "pages"]


@pytest.mark.parametrize("how", DAMAGE)
def test_damaged_run_store_is_a_store_error_with_a_hint(project: Path, settings: Settings, how: str,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    _small_run(project, settings)
    store_path = project / ".llmops" / "runs.sqlite"
    _damage(store_path, how)
    with pytest.raises(StoreError) as info:
        store = RunStore(store_path)
        store.runs()
        for m in store.runs():
            store.load(m.run_id)
    assert str(store_path) in str(info.value) and info.value.hint
    assert main(["runs", "list"]) == 2
    err = capsys.readouterr().err
    assert "runs.sqlite" in err and "hint:" in err
    # A new run refuses to write into the damaged store, before calling any model.
    assert main(["run", "evalsets/tiny.yaml", "--no-progress"]) == 2


@pytest.mark.parametrize("how", DAMAGE)
def test_damage_in_a_store_too_large_for_the_open_check_is_still_a_store_error(
        project: Path, settings: Settings, how: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Stores above QUICK_CHECK_MAX_BYTES skip the whole-file check at open (it would read every
    # page on every command); damage must then surface as StoreError when it is read.
    monkeypatch.setattr("llmops._sqlite.QUICK_CHECK_MAX_BYTES", 0)
    _small_run(project, settings)
    store_path = project / ".llmops" / "runs.sqlite"
    _damage(store_path, how)
    with pytest.raises(StoreError) as info:
        store = RunStore(store_path)
        for m in store.runs():
            list(store.load(m.run_id).results)
    assert str(store_path) in str(info.value)


def test_corrupted_result_row_is_detected(project: Path, settings: Settings) -> None:
    run_id = _small_run(project, settings)
    store_path = project / ".llmops" / "runs.sqlite"
    conn = sqlite3.connect(store_path)
    conn.execute("UPDATE results SET result = substr(result, 1, 40) WHERE seq = 3")  # half-written row
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="corrupted result") as info:
        RunStore(store_path).load(run_id)
    assert info.value.hint


@pytest.mark.parametrize("how", DAMAGE)
def test_damaged_cache_is_reported_before_the_run_starts(project: Path, settings: Settings, how: str,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    _small_run(project, settings)
    cache_path = project / ".llmops" / "cache.sqlite"
    _damage(cache_path, how)
    fake.script("fake/never", responder=lambda m, p: pytest.fail("a model was called"))  # type: ignore[arg-type,return-value]
    with pytest.raises(StoreError) as info:
        cache = ResponseCache(cache_path)
        cache.check()
        for row in range(30):
            cache.get(str(row))
    assert "cache" in str(info.value) and "delete" in (info.value.hint or "")
    assert main(["run", "evalsets/tiny.yaml", "--no-progress", "--model", "fake/never"]) == 2
    err = capsys.readouterr().err
    assert "cache.sqlite" in err and "hint:" in err


@pytest.mark.parametrize("blob", ['{"text": ', "[1, 2]", '"just a string"', '{"model": "m"}', "[" * 10000])
def test_corrupted_cache_entry_is_a_store_error(tmp_path: Path, blob: str) -> None:
    cache = ResponseCache(tmp_path / "cache.sqlite")
    cache.put("k", Completion(text="t", model="m", resolved_model="m"))
    conn = sqlite3.connect(tmp_path / "cache.sqlite")
    conn.execute("UPDATE responses SET completion = ? WHERE key = 'k'", (blob,))
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="corrupted cache entry") as info:
        cache.get("k")
    assert "delete the cache file" in (info.value.hint or "")


BAD_BASELINES = {
    "empty": b"",
    "whitespace": b"  \n",
    "truncated": None,  # the first half of a real baseline
    "not json": b"baseline: yes\n",
    "merge conflict": None,
    "wrong types": b'{"format_version": 1, "suite": 3, "variants": "many"}',
    "future format": b'{"format_version": 999}',
    "not utf-8": b'{"suite": "\xff\xfe"}',
    "nested too deep": b"[" * 100_000,
    "a list": b"[1, 2, 3]",
}


@pytest.mark.parametrize("name", list(BAD_BASELINES))
def test_damaged_baseline_is_detected_with_what_to_do(project: Path, settings: Settings, name: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    run_id = _small_run(project, settings)
    path = project / "evalsets" / "baselines" / "tiny.json"
    write_baseline(RunStore(project / ".llmops" / "runs.sqlite").load(run_id), path)
    good = path.read_bytes()
    blob = BAD_BASELINES[name]
    if name == "truncated":
        blob = good[: len(good) // 2]
    elif name == "merge conflict":
        blob = b"<<<<<<< HEAD\n" + good + b"=======\n" + good + b">>>>>>> theirs\n"
    assert blob is not None
    path.write_bytes(blob)
    with pytest.raises(StoreError) as info:
        read_baseline(path)
    assert str(path) in str(info.value) and info.value.hint
    assert main(["run", "evalsets/tiny.yaml", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "tiny.json" in err and "hint:" in err


def test_interrupted_run_fails_the_gate_until_resumed(project: Path, settings: Settings,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """A run killed half-way (its manifest still says running) must not pass CI on what it finished."""
    run_id = _small_run(project, settings)
    store_path = project / ".llmops" / "runs.sqlite"
    conn = sqlite3.connect(store_path)
    manifest = json.loads(conn.execute("SELECT manifest FROM runs").fetchone()[0])
    manifest["status"] = "running"
    conn.execute("UPDATE runs SET manifest = ?", (json.dumps(manifest),))
    conn.execute("DELETE FROM results WHERE seq > 10")
    conn.commit()
    conn.close()
    assert main(["report", run_id, "--gate"]) == 1
    assert "incomplete: 10 of 30 units" in capsys.readouterr().out
    assert main(["run", "--resume", run_id, "--no-progress"]) == 0
    assert len(RunStore(store_path).results(run_id)) == 30


@pytest.mark.parametrize("text", ['{"prompts": {"qa": {"1": "ab', "", "[" * 100_000, "null", '{"prompts": 3}'])
def test_half_written_lock_file_is_detected(tmp_path: Path, text: str) -> None:
    (tmp_path / "qa").mkdir()
    (tmp_path / "qa" / "v1.jinja").write_text("hello", encoding="utf-8")
    registry = PromptRegistry(tmp_path)
    update_lock(registry)
    (tmp_path / "prompts.lock.json").write_text(text, encoding="utf-8")
    with pytest.raises(PromptError, match="corrupted lock file") as info:
        check_lock(registry)
    assert "git" in (info.value.hint or "")
