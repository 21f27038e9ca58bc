"""`llmops view` as a user starts it: a fresh project, the CLI in a subprocess, pages fetched over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PYPROJECT = """\
[project]
name = "viewdemo"
version = "0"

[tool.llmops]
default_model = "fake/echo"
judge_model = "fake/echo"
"""
SUITE = """\
name: demo
prompt: echo@1
models: [fake/echo]
evaluators:
  - contains: {name: says_hello, value: hello}
cases:
  - {id: greet, inputs: {text: "hello world"}}
  - {id: shout, inputs: {text: "HELLO <b>bold</b>"}}
  - {id: other, inputs: {text: "goodbye"}}
"""
PROMPT = "---\ninputs:\n  text: {type: string}\n---\n{{ text }}\n"


def env() -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("LLMOPS_") and not k.endswith("_API_KEY")}
    return {**base, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "COLUMNS": "80", "PYTHONUNBUFFERED": "1"}


def llmops(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "llmops", *args], cwd=cwd, env=env(), capture_output=True,
                          text=True, timeout=300, stdin=subprocess.DEVNULL)


@contextmanager
def serving(cwd: Path, *args: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """Start `llmops view --port 0 ...` and yield the URL it prints."""
    proc = subprocess.Popen([sys.executable, "-m", "llmops", "view", "--port", "0", *args], cwd=cwd, env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # the first line names the URL (blocks until the socket listens)
        assert " at http://" in line, line + (proc.stderr.read() if proc.stderr else "")
        yield line.split(" at ", 1)[1].strip(), proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def fetch(url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode("utf-8")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8")


def make_project(tmp_path: Path) -> Path:
    root = tmp_path / "demo"
    (root / "prompts" / "echo").mkdir(parents=True)
    (root / "evalsets").mkdir()
    (root / "pyproject.toml").write_text(PYPROJECT, encoding="utf-8")
    (root / "prompts" / "echo" / "v1.jinja").write_text(PROMPT, encoding="utf-8")
    (root / "evalsets" / "demo.yaml").write_text(SUITE, encoding="utf-8")
    return root


def test_view_serves_a_fresh_project_and_its_marks_feed_calibrate(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    ran = llmops(root, "run", "evalsets/demo.yaml", "--no-progress", "--cache", "off")
    assert ran.returncode in (0, 1) and "other" in ran.stdout, ran.stdout + ran.stderr
    assert "could not write traces" not in ran.stderr
    import sqlite3

    with sqlite3.connect(root / ".llmops" / "traces.sqlite") as db:  # every unit's trace (root + generation)
        assert db.execute("SELECT COUNT(*) FROM spans").fetchone()[0] == 6
    with serving(root) as (url, _proc):
        assert url.startswith("http://127.0.0.1:") and "token" not in url
        status, runs = fetch(url + "runs")
        assert status == 200 and "demo" in runs and ">failures<" in runs
        data = json.loads(fetch(url + "api/runs")[1])
        run_id = data["runs"][0]["run_id"]
        status, page = fetch(f"{url}runs/{run_id}?failures=1")
        assert status == 200 and "other" in page and "greet" not in page
        status, cell = fetch(f"{url}runs/{run_id}/cell?case=shout&prompt=echo%401&model=fake%2Fecho")
        assert status == 200 and "HELLO &lt;b&gt;bold&lt;/b&gt;" in cell and "<b>bold" not in cell
        assert "/traces/" in cell  # the unit's trace is linked
        trace_id = cell.split('href="/traces/', 1)[1].split('"', 1)[0]
        status, trace = fetch(f"{url}traces/{trace_id}")
        assert status == 200 and "generation" in trace
        matrix = json.loads(fetch(f"{url}api/runs/{run_id}")[1])
        units = {row["case_id"]: next(c for c in row["cells"] if c)["unit"] for row in matrix["rows"]}
        write = {"Content-Type": "application/json", "X-LLMOps-Review": "1"}
        for case, label in (("greet", "pass"), ("shout", "pass"), ("other", "fail")):
            body = json.dumps({"kind": "run", "run_id": run_id, "unit": units[case], "label": label}).encode()
            status, saved = fetch(url + "api/review", body, write)
            assert status == 200, saved
        status, _ = fetch(url + "api/review", body, {"Content-Type": "application/json"})
        assert status == 403  # without the same-origin header
    labels = root / "review" / "labels.jsonl"
    assert len(labels.read_text(encoding="utf-8").splitlines()) == 3
    calibrated = llmops(root, "calibrate", "contains", "-p", "value=hello", "--json")
    assert calibrated.returncode == 0, calibrated.stdout + calibrated.stderr
    report = json.loads(calibrated.stdout)
    assert report["n"] == 3 and report["accuracy"] == 1.0


def test_read_only_and_non_loopback_hosts(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    with serving(root, "--read-only") as (url, proc):
        status, body = fetch(url + "api/review", b"{}", {"Content-Type": "application/json", "X-LLMOps-Review": "1"})
        assert status == 403 and "read-only" in body
    with serving(root, "--host", "0.0.0.0") as (url, proc):
        assert "?token=" in url
        port = url.split(":")[2].split("/")[0]
        token = url.split("?token=", 1)[1]
        status, _ = fetch(f"http://127.0.0.1:{port}/runs")
        assert status == 401
        status, page = fetch(f"http://127.0.0.1:{port}/api/runs", headers={"Authorization": f"Bearer {token}"})
        assert status == 200 and json.loads(page)["runs"] == []
        proc.terminate()
        assert proc.stderr is not None and "warning: --host 0.0.0.0" in proc.stderr.read()
    refused = llmops(root, "view", "--host", "0.0.0.0", "--token", "", "--port", "0")
    assert refused.returncode == 2 and "access token is empty" in refused.stderr


def test_a_taken_port_is_a_clear_usage_error(tmp_path: Path) -> None:
    import socket

    root = make_project(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        out = llmops(root, "view", "--port", str(port))
    assert out.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in out.stderr and "--port 0" in out.stderr
