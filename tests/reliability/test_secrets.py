"""Secrets: credentials planted in the environment, the config and request headers never reach an artifact.

One project is run end to end (CLI run with judge and baseline, reports, runs/models listings,
``llmops complete`` traced to the local trace store, the pytest plugin writing JUnit XML) against
a local OpenAI double; then every file the project holds, every captured log line and every
printed line is searched for the planted values.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from reliability_helpers import echo_prompt

from llmops.cli import main
from llmops.llm import fake
from llmops.testing import ProviderServer

ENV_KEY = "sk-envplanted0000000000000000000000aa"
CONFIG_KEY = "sk-configplanted111111111111111111bb"
HEADER_KEY = "hdr-planted-2222222222222222222222cc"
WRONG_KEY = "sk-wrongplanted3333333333333333333dd"
LANGFUSE_SECRET = "sk-lf-planted44444444444444444444ee"
INPUT_KEY = "sk-inputplanted5555555555555555555ff"  # a credential pasted into a prompt input
PLANTED = {"env": ENV_KEY, "config": CONFIG_KEY, "header": HEADER_KEY, "wrong": WRONG_KEY,
           "langfuse": LANGFUSE_SECRET}


@pytest.fixture
def servers() -> Iterator[tuple[ProviderServer, ProviderServer]]:
    with ProviderServer(api_key=None) as open_server, ProviderServer(api_key=CONFIG_KEY) as strict:
        yield open_server, strict


def _configure(project: Path, open_server: ProviderServer, strict: ProviderServer) -> None:
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('judge_model = "fake/judge"', 'judge_model = "cfg"')
                         + 'tracing = "local"\n\n'
                         "[tool.llmops.models.cfg]\n"
                         'model = "openai/gpt-4o-mini"\n'
                         f'params = {{api_base = "{open_server.openai_base}", api_key = "{CONFIG_KEY}", '
                         f'extra_headers = {{X-Gateway-Token = "{HEADER_KEY}"}}}}\n\n'
                         "[tool.llmops.models.envm]\n"
                         'model = "openai/gpt-4o-mini"\n'
                         f'params = {{api_base = "{open_server.openai_base}"}}\n\n'
                         "[tool.llmops.models.wrong]\n"
                         'model = "openai/gpt-4o-mini"\n'
                         f'params = {{api_base = "{strict.openai_base}", api_key = "{WRONG_KEY}"}}\n',
                         encoding="utf-8")
    echo_prompt(project)
    open_server.responder = lambda provider, messages: (
        '{"reason": "fine", "verdict": "pass"}' if "Criteria:" in messages[-1]["content"]
        else f"echo: {messages[-1]['content']}")
    (project / "evalsets" / "sec.yaml").write_text(
        "name: sec\nprompt: echo@1\nmodels: [cfg, envm, wrong]\n"
        "evaluators: [contains, {kind: judge, criteria: 'repeats the question'}]\n"
        "gate: {max_errors: 0.5}\n"
        "cases:\n" + "".join(f"  - {{id: s{i}, inputs: {{q: 'q{i}'}}, expected: 'q{i}'}}\n" for i in range(3)),
        encoding="utf-8")


def _leaks(blob: bytes) -> list[str]:
    return [name for name, value in PLANTED.items() if value.encode() in blob]


def test_planted_credentials_never_reach_an_artifact(project: Path, servers: tuple[ProviderServer, ProviderServer],
                                                     monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    open_server, strict = servers
    _configure(project, open_server, strict)
    monkeypatch.setenv("OPENAI_API_KEY", ENV_KEY)
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", "pk-lf-planted")
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", LANGFUSE_SECRET)
    monkeypatch.setenv("LANGFUSE_HOST", "http://127.0.0.1:9")
    caplog.set_level(logging.DEBUG)

    # A run with a judge, a baseline and both reports; one model has a wrong key (401 errors):
    # that model measured nothing, so the run is not a pass (exit 5), and every artifact is written.
    assert main(["run", "evalsets/sec.yaml", "--no-progress", "--update-baseline", "--html", "run.html",
                 "--markdown", "run.md", "--cache", "read-write"]) == 5
    assert main(["report", "latest", "--html", "report.html", "--markdown", "report.md", "--json",
                 "report.json"]) == 0
    for argv in (["runs", "list"], ["runs", "show", "latest"], ["models"], ["models", "--json"],
                 ["run", "evalsets/sec.yaml", "--dry-run"], ["run", "evalsets/sec.yaml", "--no-progress", "--json"]):
        assert main(argv) in (0, 1, 5), argv
    # A traced single call whose input carries a pasted credential: the trace store redacts it.
    assert main(["complete", "echo@1", "-i", f"q=my key is {INPUT_KEY}", "--model", "cfg"]) == 0
    from llmops.tracing.tracer import reset_tracing

    reset_tracing()  # flush the trace store
    printed = capsys.readouterr()
    run_errors = (project / "run.md").read_text()
    assert "401" in run_errors or "Incorrect API key" in run_errors  # the wrong key did fail

    # The pytest plugin, as CI runs it: JUnit XML (and its traces) must be clean too.
    env = {**os.environ, "OPENAI_API_KEY": ENV_KEY, "LANGFUSE_SECRET_KEY": LANGFUSE_SECRET,
           "LANGFUSE_PUBLIC_KEY": "pk-lf-planted", "LANGFUSE_HOST": "http://127.0.0.1:9",
           "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    plugin = subprocess.run([sys.executable, "-m", "pytest", "evalsets", "-p", "no:cacheprovider", "-q",
                             "--junitxml=junit.xml", "-o", "junit_logging=all", "--llmops-no-gate"],
                            cwd=project, env=env, capture_output=True, timeout=300, check=False)
    assert (project / "junit.xml").exists(), plugin.stdout.decode()[-3000:] + plugin.stderr.decode()[-3000:]

    traces = (project / ".llmops" / "traces.sqlite").read_bytes()
    assert traces and INPUT_KEY.encode() not in traces
    leaked: dict[str, list[str]] = {}
    for path in project.rglob("*"):
        if path.is_file():
            found = _leaks(path.read_bytes())
            if found:
                leaked[str(path.relative_to(project))] = found
    for name, text in (("stdout", printed.out), ("stderr", printed.err), ("logs", caplog.text),
                       ("plugin stdout", plugin.stdout.decode()), ("plugin stderr", plugin.stderr.decode())):
        found = _leaks(text.encode())
        if found:
            leaked[name] = found
    leaked.pop("pyproject.toml", None)  # the config holds the keys by the user's choice
    assert not leaked, leaked
    # Credentials travelled only in headers, never in a request body.
    for server in (open_server, strict):
        for request in server.requests:
            assert not _leaks(repr(request.body).encode())


def test_secret_params_never_enter_cache_keys_or_call_records(project: Path) -> None:
    from llmops.llm.cache import request_key
    from llmops.llm.client import public_params
    from llmops.llm.types import Message

    params = {"api_key": CONFIG_KEY, "extra_headers": {"Authorization": f"Bearer {HEADER_KEY}"},
              "headers": {"x-api-key": ENV_KEY}, "temperature": 0}
    msgs = [Message("user", "hi")]
    assert request_key("m", msgs, params, 0, 0) == request_key("m", msgs, {"temperature": 0}, 0, 0)
    assert not _leaks(repr(public_params(params)).encode())
    fake.reset()
