"""Planted-secret sweep: a provider that echoes the credentials it received, for every credential source.

Every credential llmops knows of is planted with a value that has no known key shape (so only
redaction *by value* can catch it): the provider key variable, an alias's ``api_key`` and
``extra_headers`` value, a suite's ``params.api_key`` and header, a prompt's ``params.api_key``, a
password inside an alias's ``api_base``, and the Langfuse secret key. The provider double answers
errors that quote the request's credentials (as several real providers do on a 401). Then every
artifact is searched: the SQLite stores dumped as SQL, every file of the project (reports, JUnit
XML, baselines, the trace store), everything printed, captured logs (OpenAI SDK DEBUG included),
the pytest plugin's output and the settings as a notebook shows them.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from reliability_helpers import COUNTS, echo_prompt

from llmops.cli import main
from llmops.testing import ProviderServer

PLANTED = {
    "OPENAI_API_KEY": "envkey-PLANTED-a1a1a1a1a1",
    "alias api_key": "aliaskey-PLANTED-b2b2b2b2",
    "alias extra_headers": "aliashdr-PLANTED-c3c3c3c3",
    "suite api_key": "suitekey-PLANTED-d4d4d4d4",
    "suite extra_headers": "suitehdr-PLANTED-e5e5e5e5",
    "prompt api_key": "promptkey-PLANTED-f6f6f6f6",
    "api_base password": "urlpass-PLANTED-g7g7g7g7",
    "LANGFUSE_SECRET_KEY": "lfsecret-PLANTED-h8h8h8h8",
}


@pytest.fixture
def echoing() -> Iterator[ProviderServer]:
    # Every second request fails with a 401 whose body quotes the credentials it carried.
    with ProviderServer(api_key=None, echo_credentials=True, error_rate=0.5, error_status=401, seed=3) as server:
        yield server


def _project(project: Path, server: ProviderServer) -> None:
    base = server.openai_base
    with_password = base.replace("http://", f"http://gateway:{PLANTED['api_base password']}@")
    pyproject = project / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text() + 'tracing = "local"\n\n'
        "[tool.llmops.models.cfg]\n"
        'model = "openai/gpt-4o-mini"\n'
        f'params = {{api_base = "{base}", api_key = "{PLANTED["alias api_key"]}", '
        f'extra_headers = {{X-Route = "{PLANTED["alias extra_headers"]}"}}}}\n\n'
        "[tool.llmops.models.envm]\n"
        'model = "openai/gpt-4o-mini"\n'
        f'params = {{api_base = "{base}"}}\n\n'
        "[tool.llmops.models.proxied]\n"
        'model = "openai/gpt-4o-mini"\n'
        f'params = {{api_base = "{with_password}"}}\n',
        encoding="utf-8")
    echo_prompt(project)
    keyed = project / "prompts" / "keyed"
    keyed.mkdir()
    (keyed / "v1.jinja").write_text(
        f"---\ninputs:\n  q: {{type: string}}\nparams:\n  api_key: {PLANTED['prompt api_key']}\n---\n{{{{ q }}}}\n",
        encoding="utf-8")
    cases = "cases:\n" + "".join(f"  - {{id: s{i}, inputs: {{q: 'q{i}'}}, expected: 'q{i}'}}\n" for i in range(4))
    (project / "evalsets" / "aliases.yaml").write_text(
        "name: aliases\nprompt: echo@1\nmodels: [cfg, envm, proxied]\nevaluators: [contains]\n"
        "gate: {max_errors: 1.0}\n" + cases, encoding="utf-8")
    (project / "evalsets" / "suiteparams.yaml").write_text(
        "name: suiteparams\nprompt: echo@1\nmodels: [envm]\nevaluators: [contains]\n"
        f"params: {{api_key: {PLANTED['suite api_key']}, temperature: 0,"
        f" extra_headers: {{X-Tenant: {PLANTED['suite extra_headers']}}}}}\n"
        "gate: {max_errors: 1.0}\n" + cases, encoding="utf-8")
    (project / "evalsets" / "promptparams.yaml").write_text(
        "name: promptparams\nprompt: keyed@1\nmodels: [envm]\nevaluators: [contains]\n"
        "gate: {max_errors: 1.0}\n" + cases, encoding="utf-8")


def _sql_dump(path: Path) -> str:
    con = sqlite3.connect(path)
    try:
        return "\n".join(con.iterdump())
    finally:
        con.close()


def _found(text: str) -> list[str]:
    return [name for name, value in PLANTED.items() if value in text]


def test_echoed_credentials_from_every_source_reach_no_artifact(
        project: Path, echoing: ProviderServer, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> None:
    _project(project, echoing)
    env = {"OPENAI_API_KEY": PLANTED["OPENAI_API_KEY"], "LANGFUSE_SECRET_KEY": PLANTED["LANGFUSE_SECRET_KEY"],
           "LANGFUSE_PUBLIC_KEY": "pk-lf-planted", "LANGFUSE_HOST": "http://127.0.0.1:9"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    caplog.set_level(logging.DEBUG)

    for suite in ("aliases", "suiteparams", "promptparams"):
        assert main(["run", f"evalsets/{suite}.yaml", "--no-progress", "--update-baseline", "--cache", "off",
                     "--html", f"{suite}.html", "--markdown", f"{suite}.md"]) in (0, 1), suite
        assert main(["report", "latest", "--html", f"r-{suite}.html", "--markdown", f"r-{suite}.md",
                     "--json", f"r-{suite}.json"]) in (0, 1)
        assert main(["runs", "show", "latest", "--json"]) == 0
    for argv in (["runs", "list"], ["runs", "show", "latest"], ["models"], ["models", "--json"],
                 ["run", "evalsets/suiteparams.yaml", "--no-progress", "--json", "--cache", "off"],
                 ["compare", "evalsets/aliases.yaml", "--models", "cfg,envm", "--no-progress", "--html",
                  "compare.html", "--markdown", "compare.md"],
                 ["complete", "keyed@1", "-i", "q=hello", "--model", "envm"],
                 ["complete", "echo@1", "-i", "q=hello", "--model", "cfg"],
                 ["complete", "echo@1", "-i", "q=hello", "--model", "proxied"]):
        main(argv)  # some of these fail on the 401s: only what they print and store matters
    from llmops.config import load_settings
    from llmops.tracing.tracer import reset_tracing

    shown_settings = repr(load_settings(project)) + str(load_settings(project))
    reset_tracing()  # flush the trace store
    printed = capsys.readouterr()

    # The pytest plugin, as CI runs it: JUnit XML and its own output.
    plugin = subprocess.run(
        [sys.executable, "-m", "pytest", "evalsets", "-p", "no:cacheprovider", "-q", "--junitxml=junit.xml",
         "-o", "junit_logging=all", "--llmops-no-gate"],
        cwd=project, env={**os.environ, **env, "OPENAI_LOG": "debug"}, capture_output=True, timeout=300,
        check=False)
    assert (project / "junit.xml").exists(), plugin.stdout.decode()[-3000:] + plugin.stderr.decode()[-3000:]

    # The echo happened, for calls carrying each kind of credential: the sweep can fail.
    store_sql = _sql_dump(project / ".llmops" / "runs.sqlite")
    assert store_sql.count("request credentials") >= 3, store_sql[-2000:]
    assert "[REDACTED]" in store_sql
    headers_seen = {k: v for r in echoing.requests for k, v in r.headers.items()}
    assert headers_seen.get("x-route") == PLANTED["alias extra_headers"]
    assert headers_seen.get("x-tenant") == PLANTED["suite extra_headers"]

    artifacts: dict[str, str] = {
        "stdout": printed.out, "stderr": printed.err, "logs": caplog.text, "settings repr": shown_settings,
        "plugin stdout": plugin.stdout.decode(), "plugin stderr": plugin.stderr.decode()}
    for path in sorted(project.rglob("*")):
        if not path.is_file() or path.name == "pyproject.toml" or path.parent.name in ("keyed", "evalsets"):
            continue  # the config, the prompt and the suites hold the keys by the user's choice
        rel = str(path.relative_to(project))
        if path.suffix == ".sqlite":
            artifacts[f"{rel} (sql dump)"] = _sql_dump(path)
        artifacts[rel] = path.read_bytes().decode("utf-8", "replace")
    assert any(name.endswith("baseline.json") or "baselines" in name for name in artifacts), sorted(artifacts)
    assert "junit.xml" in artifacts and ".llmops/traces.sqlite (sql dump)" in artifacts, sorted(artifacts)

    leaked = {name: found for name, text in artifacts.items() if (found := _found(text))}
    COUNTS["secrets planted"] += len(PLANTED)
    COUNTS["secret artifacts swept"] += len(artifacts)
    COUNTS["secrets found in artifacts"] += sum(len(v) for v in leaked.values())
    assert not leaked, leaked


def test_scrub_by_value_and_shape() -> None:
    from llmops import credentials
    from llmops.errors import ProviderError

    credentials.register({"custom-credential-zz99", "short"})
    err = ProviderError("401: key custom-credential-zz99 and sk-abcdefghijklmnopqrstuvwx rejected",
                        model="openai/x", status_code=401)
    assert "custom-credential-zz99" not in str(err) and "sk-abcdefghijklmnop" not in str(err)
    assert "short" not in credentials.known_values()  # too short to scrub by value: blanks too much
    assert credentials.scrub("http://u:pw@host/v1") == "http://u:[REDACTED]@host/v1"


@pytest.mark.parametrize(("name", "secret"), [
    ("api_key", True), ("extra_headers", True), ("headers", True), ("X-Gateway-Token", True),
    ("Authorization", True), ("OPENAI_API_KEY", True), ("LANGFUSE_SECRET_KEY", True),
    ("AWS_SECRET_ACCESS_KEY", True), ("db.password", True), ("vertex_credentials", True),
    ("max_tokens", False), ("api_base", False), ("TOKENIZERS_PARALLELISM", False), ("temperature", False),
    ("LANGFUSE_PUBLIC_KEY", False),
])
def test_one_rule_for_secret_names(name: str, secret: bool) -> None:
    from llmops.credentials import is_secret_name

    assert is_secret_name(name) is secret


def test_public_params_drop_secrets_at_any_depth_and_url_passwords() -> None:
    from llmops.credentials import public_params

    params = {"api_key": "k" * 12, "api_base": "http://u:hunter2hunter2@h/v1", "max_tokens": 5,
              "metadata": {"client_secret": "s" * 12, "team": "x"}, "extra_headers": {"X-A": "b" * 12}}
    assert public_params(params) == {"api_base": "http://u:[REDACTED]@h/v1", "max_tokens": 5,
                                     "metadata": {"team": "x"}}
