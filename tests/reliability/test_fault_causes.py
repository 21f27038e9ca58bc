"""What happened is what is reported: a refused connection and a timeout are not "HTTP 500" / "HTTP 408".

LiteLLM turns a refused connection into an ``InternalServerError`` with status 500 and a client
timeout into a ``Timeout`` with status 408, although no server answered. The user runs the CLI
as the docs print it (a subprocess, output piped) against a closed loopback port and against a
server that sleeps, and reads the result rows, the terminal report, the JSON and HTML reports
and the traces: each says "connection refused" or "timed out", with no HTTP status, and how many
attempts were paid for. A server that really answers 500 or 408 is still reported with its status.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from reliability_helpers import KEY, echo_prompt

from llmops.testing import Fault, ProviderServer

N = 2


@pytest.fixture
def server() -> Iterator[ProviderServer]:
    with ProviderServer(api_key=KEY) as srv:
        yield srv


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed: the kernel refuses connections to it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _project(project: Path, api_base: str) -> None:
    pyproject = project / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text() + 'tracing = "local"\nmax_retries = 1\n\n'
        "[tool.llmops.models.remote]\n"
        'model = "openai/gpt-4o-mini"\n'
        f'params = {{api_base = "{api_base}", api_key = "{KEY}"}}\n', encoding="utf-8")
    echo_prompt(project)
    cases = "".join(f"  - {{id: c{i}, inputs: {{q: 'q{i}'}}, expected: 'q{i}'}}\n" for i in range(N))
    (project / "evalsets" / "remote.yaml").write_text(
        "name: remote\nprompt: echo@1\nmodels: [remote]\nevaluators: [contains]\ncases:\n" + cases,
        encoding="utf-8")


def _llmops(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMOPS_", "LANGFUSE_"))}
    env.update(COLUMNS="80", NO_COLOR="1")
    return subprocess.run([sys.executable, "-m", "llmops", *args], cwd=project, env=env, capture_output=True,
                          text=True, timeout=300, stdin=subprocess.DEVNULL)


def _everything_reported(project: Path, *run_args: str) -> dict[str, str]:
    """Run the suite, then read what the user can read: stdout, the stored rows, reports, traces."""
    run = _llmops(project, "run", "evalsets/remote.yaml", "--cache", "off", "--no-progress", "--html", "run.html",
                  *run_args)
    assert run.returncode != 0 and "Traceback" not in run.stderr, run.stderr
    report = _llmops(project, "report", "latest", "--json", "report.json", "--html", "report.html")
    assert "Traceback" not in report.stderr, report.stderr
    rows = json.loads(_llmops(project, "runs", "show", "latest", "--json").stdout)
    listed = _llmops(project, "traces", "list", "--errors", "--json")
    assert listed.returncode == 0, listed.stderr
    traces = json.loads(listed.stdout)
    assert len(traces) == N, traces
    shown = [_llmops(project, "traces", "show", t["trace_id"]).stdout for t in traces]
    con = sqlite3.connect(project / ".llmops" / "traces.sqlite")
    try:
        spans = [json.loads(data) for (data,) in con.execute(
            "SELECT data FROM spans WHERE status = 'error' AND kind = 'generation'")]
    finally:
        con.close()
    assert len(spans) == N
    return {"stdout": run.stdout + run.stderr, "rows": json.dumps(rows), "report.json":
            (project / "report.json").read_text(encoding="utf-8"),
            "run.html": (project / "run.html").read_text(encoding="utf-8"),
            "report.html": (project / "report.html").read_text(encoding="utf-8"),
            "traces show": "\n".join(shown), "trace spans": json.dumps(spans), "_rows": json.dumps(rows),
            "_spans": json.dumps(spans)}


def _errors_of(reported: dict[str, str]) -> list[dict[str, object]]:
    rows = json.loads(reported["_rows"])
    results = rows["results"] if isinstance(rows, dict) else rows
    return [r for r in results if r.get("status") == "error"]


def test_a_refused_connection_is_reported_as_refused_everywhere(project: Path) -> None:
    _project(project, f"http://127.0.0.1:{_closed_port()}/v1")
    reported = _everything_reported(project)
    for where, text in reported.items():
        if where.startswith("_"):
            continue
        assert "connection refused" in text, where
        assert "HTTP 500" not in text and "InternalServerError" not in text, (where, text[:2000])
    errors = _errors_of(reported)
    assert len(errors) == N and all(e["attempts"] == 2 for e in errors)  # max_retries = 1: two attempts
    assert all("gave up after 2 attempts" in str(e["error"]) for e in errors)
    for span in json.loads(reported["_spans"]):
        assert span["error_type"] == "ProviderConnectionError" and span["status_code"] is None
        assert "connection refused" in span["error"] and span["metadata"]["attempts"] == 2


def test_a_timeout_is_reported_as_a_timeout_everywhere(project: Path, server: ProviderServer) -> None:
    server.script(*[Fault.hang()] * (2 * N))  # the server sleeps through every attempt
    _project(project, server.openai_base)
    reported = _everything_reported(project, "--timeout", "2")
    for where, text in reported.items():
        if where.startswith("_"):
            continue
        assert "timed out" in text or "no answer within" in text, where
        assert "HTTP 408" not in text, (where, text[:2000])
    # (Under load an attempt can time out before its request reached the server.)
    assert N <= server.count <= 2 * N
    errors = _errors_of(reported)
    assert len(errors) == N and all(e["attempts"] == 2 for e in errors)
    for span in json.loads(reported["_spans"]):
        assert span["error_type"] == "ProviderTimeoutError" and span["status_code"] is None
        assert span["metadata"]["attempts"] == 2


@pytest.mark.parametrize("status", [500, 408])
def test_a_status_the_server_really_sent_is_still_reported(project: Path, server: ProviderServer,
                                                          status: int) -> None:
    server.script(*[Fault.error(status)] * (2 * N))
    _project(project, server.openai_base)
    run = _llmops(project, "run", "evalsets/remote.yaml", "--cache", "off", "--no-progress")
    assert run.returncode != 0 and "Traceback" not in run.stderr, run.stderr
    assert f"HTTP {status}" in run.stdout + run.stderr
    assert "connection refused" not in run.stdout and server.count == 2 * N
