from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from llmops.runner.store import RunStore

WORKER = Path(__file__).with_name("kill_worker.py")
N_CASES = 12


def _suite(project: Path) -> None:
    cases = "\n".join(f"  - {{id: k{i}, inputs: {{question: 'q{i}'}}, expected: 'a{i % 8}'}}"
                      for i in range(N_CASES))
    (project / "evalsets" / "kill.yaml").write_text(
        "prompt: rag_answer@2\nmodels: [fake/slow]\nevaluators: [contains]\ncases:\n" + cases + "\n",
        encoding="utf-8")


def _spawn(project: Path, log: Path, mode: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    return subprocess.Popen([sys.executable, str(WORKER), str(project), str(log), mode], cwd=project,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_sigkill_mid_run_then_resume_completes_exactly_once(project: Path) -> None:
    _suite(project)
    store_path = project / ".llmops" / "runs.sqlite"
    log = project / "calls.jsonl"
    rng = random.Random(7)
    proc = _spawn(project, log, "run")
    # Kill at a random point after some results are stored (and before the run ends).
    target = rng.randint(3, N_CASES * 2 - 6)
    deadline = time.monotonic() + 60
    killed_at = None
    while time.monotonic() < deadline and proc.poll() is None:
        if store_path.exists():
            try:
                done = len(RunStore(store_path).done_units("killed-run"))
            except Exception:
                done = 0
            if done >= target:
                proc.send_signal(signal.SIGKILL)
                killed_at = done
                break
        time.sleep(0.005)
    proc.wait(timeout=30)
    assert killed_at is not None, "the run finished before it could be killed"
    assert proc.returncode == -signal.SIGKILL
    stored_before = len(RunStore(store_path).done_units("killed-run"))
    assert stored_before < N_CASES * 2

    resume = _spawn(project, log, "resume")
    _, err = resume.communicate(timeout=120)
    assert resume.returncode == 0, err.decode()[-2000:]

    store = RunStore(store_path)
    results = store.results("killed-run")
    keys = [r.key for r in results]
    assert len(keys) == N_CASES * 2 and len(set(keys)) == N_CASES * 2  # exactly one result per unit
    assert all(r.status == "pass" for r in results)
    assert store.manifest("killed-run").status == "completed"
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    provider = [c["key"] for c in calls if not c["cached"]]
    assert len(provider) == len(set(provider)), "a completed provider call was made twice"
    assert len({c["pid"] for c in calls}) == 2
