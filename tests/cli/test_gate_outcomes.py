"""The gate never passes what it did not measure: `llmops run` as a user runs it, against a loopback provider.

Each test plays the user from outside: a fresh project folder, the CLI in a subprocess with its
output piped at 80 columns, a local OpenAI-compatible server that answers "yes" with a chosen
probability (issues 23 §1-3, 24 §1, 15 §4 and §8).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llmops.testing.provider_server import ProviderServer

REPO = Path(__file__).resolve().parents[2]
PRICE = 0.001  # USD per token, in and out: a run's spending is big enough to read


class Coin:
    """Answers "yes" with probability ``p`` (seeded), "no" otherwise."""

    def __init__(self) -> None:
        self.p = 1.0
        self.rng = random.Random(7)

    def __call__(self, provider: str, messages: list[dict[str, Any]]) -> str:
        return "yes" if self.rng.random() < self.p else "no"


@pytest.fixture
def coin() -> Coin:
    return Coin()


@pytest.fixture
def server(coin: Coin) -> Iterator[ProviderServer]:
    with ProviderServer(api_key="sk-coin", responder=coin) as srv:
        yield srv


def _project(project: Path, server: ProviderServer, *, gate: str = "", cases: int = 8,
             evaluators: str = "[contains]") -> Path:
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text().replace('judge_model = "fake/judge"', 'judge_model = "coin"')
    pyproject.write_text(text + "\n[tool.llmops.models.coin]\n"
                         'model = "openai/gpt-4o-mini"\n'
                         f'params = {{api_base = "{server.openai_base}", api_key = "sk-coin", '
                         f"input_cost_per_token = {PRICE}, output_cost_per_token = {PRICE}}}\n", encoding="utf-8")
    folder = project / "prompts" / "ask"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "v1.jinja").write_text("---\ninputs:\n  q: {type: string}\nparams: {max_tokens: 5}\n---\n"
                                     "Answer yes or no: {{ q }}\n", encoding="utf-8")
    rows = "".join(f"  - {{id: c{i}, inputs: {{q: 'question {i}'}}, expected: 'yes'}}\n" for i in range(cases))
    path = project / "evalsets" / "coin.yaml"
    path.write_text(f"name: coin\nprompt: ask@1\nmodels: [coin]\nevaluators: {evaluators}\n{gate}cases:\n{rows}",
                    encoding="utf-8")
    return path


def _llmops(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.startswith("LLMOPS_")}
    env.update(PYTHONPATH=str(REPO), COLUMNS="80", LITELLM_LOCAL_MODEL_COST_MAP="True", RAGAS_DO_NOT_TRACK="true",
               DO_NOT_TRACK="1")
    return subprocess.run([sys.executable, "-m", "llmops", *args], cwd=project, env=env, capture_output=True,
                          text=True, timeout=300, check=False)


def _manifest(project: Path) -> dict[str, Any]:
    done = _llmops(project, "runs", "show", "latest", "--json")
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout)["manifest"])


# ---- issue 23 §1 and §3: quarantine, nothing left to judge, pass^k ------------------------------

def test_quarantine_cannot_hide_a_coin_flip_regression(project: Path, server: ProviderServer, coin: Coin) -> None:
    _project(project, server, gate="gate: {quarantine_flaky: true}\n")
    base = _llmops(project, "run", "coin", "--repeat", "5", "--cache", "off", "--update-baseline")
    assert base.returncode == 0, base.stdout + base.stderr
    coin.p = 0.5  # every answer a coin flip: stable-pass cases become flaky
    done = _llmops(project, "run", "coin", "--repeat", "5", "--cache", "off")
    out = done.stdout
    assert done.returncode == 1, out + done.stderr
    assert "FAILED" in out and "pass rate regressed" in out
    assert "stable in the baseline are flaky now" in out
    assert "PASSED" not in out
    # The repeats are counted: stable-pass / stable-fail / flaky and pass^5, in the CLI and runs show.
    assert "repeats: ask@1 × coin: 8 cases over 5 repeat(s):" in out and "pass^5" in out
    shown = _llmops(project, "runs", "show", "latest")
    assert "8 cases over 5 repeat(s)" in shown.stdout and "pass^5" in shown.stdout
    report = _llmops(project, "report", "latest", "--markdown", "r.md", "--html", "r.html")
    assert report.returncode in (0, 1), report.stderr
    assert "pass^5" in (project / "r.md").read_text() and "pass^5" in (project / "r.html").read_text()


def test_a_gate_with_nothing_left_to_judge_is_not_a_pass(project: Path, server: ProviderServer, coin: Coin) -> None:
    _project(project, server, gate="gate: {quarantine_flaky: true}\n", cases=4)
    coin.p = 0.5
    assert _llmops(project, "run", "coin", "--repeat", "6", "--cache", "off", "--update-baseline").returncode in (0, 1)
    done = _llmops(project, "run", "coin", "--repeat", "6", "--cache", "off")
    # Every case was flaky in the baseline and is quarantined: nothing is left, and that is said.
    assert done.returncode == 5, done.stdout + done.stderr
    assert "NOTHING MEASURED" in done.stdout and "quarantined" in done.stdout


# ---- issue 24 §1: the default gate ---------------------------------------------------------------

def test_a_suite_without_gate_or_baseline_must_pass_every_measured_case(project: Path, server: ProviderServer,
                                                                        coin: Coin) -> None:
    _project(project, server)
    coin.p = 0.0
    done = _llmops(project, "run", "coin", "--cache", "off")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "8 of 8 measured units failed" in done.stdout and "default gate" in done.stdout
    coin.p = 1.0
    assert _llmops(project, "run", "coin", "--cache", "off").returncode == 0


def test_a_run_with_nothing_measured_is_its_own_outcome(project: Path, server: ProviderServer) -> None:
    # The judge (the same coin server) answers "yes", not the JSON verdict it was asked for: unmeasured.
    _project(project, server, evaluators="[{kind: judge, criteria: 'answers the question'}]")
    done = _llmops(project, "run", "coin", "--cache", "off")
    assert done.returncode == 5, done.stdout + done.stderr
    assert "NOTHING MEASURED" in done.stdout and "8 units: 8 unmeasured" in done.stdout


# ---- issue 23 §1 and §2: a budget means money ----------------------------------------------------

def test_budget_is_never_crossed_and_a_stop_is_its_own_resumable_outcome(project: Path, server: ProviderServer) -> None:
    _project(project, server, cases=20)
    zero = _llmops(project, "run", "coin", "--cache", "off", "--max-cost-usd", "0")
    assert zero.returncode == 3, zero.stdout + zero.stderr
    assert server.count == 0  # no paid call at all
    assert "STOPPED AT BUDGET" in zero.stdout and "0 of 20 units ran" in zero.stdout

    done = _llmops(project, "run", "coin", "--cache", "off", "--concurrency", "8", "--max-cost-usd", "0.2")
    assert done.returncode == 3, done.stdout + done.stderr
    m = _manifest(project)
    assert m["status"] == "budget_exhausted" and 0 < m["cost_usd"] <= 0.2
    assert 0 < server.count < 20
    resumed = _llmops(project, "run", "--resume", m["run_id"], "--max-cost-usd", "10")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert server.count == 20  # the resume ran only what the budget had left


def test_cached_answers_cost_nothing_now(project: Path, server: ProviderServer) -> None:
    _project(project, server)
    assert _llmops(project, "run", "coin", "--cache", "read-write").returncode == 0
    recorded = _manifest(project)["cost_usd"]
    assert recorded > 0
    replay = _llmops(project, "run", "coin", "--cache", "read-only", "--max-cost-usd", "0.0001")
    assert replay.returncode == 0, replay.stdout + replay.stderr  # no budget stop: nothing is spent
    assert server.count == 8
    m = _manifest(project)
    assert m["cost_usd"] == 0 and m["recorded_cost_usd"] == pytest.approx(recorded)
    assert f"cost $0.0000 (cached answers: ${recorded:.4f} when recorded)" in replay.stdout


def test_dry_run_shows_bound_and_typical_and_speaks_json(project: Path, server: ProviderServer) -> None:
    _project(project, server)
    first = json.loads(_llmops(project, "run", "coin", "--dry-run", "--json").stdout)
    assert first["calls"] == 8 and first["bound_cost_usd"] > 0 and first["typical_cost_usd"] is None
    assert _llmops(project, "run", "coin", "--cache", "off").returncode == 0
    plan = json.loads(_llmops(project, "run", "coin", "--dry-run", "--json", "--cache", "off").stdout)
    # One-word answers: the typical estimate from that run is far below the max_tokens bound.
    assert plan["typical_cost_usd"] < plan["bound_cost_usd"]
    assert "earlier runs of coin for 8 of 8" in plan["typical_basis"]
    text = _llmops(project, "run", "coin", "--dry-run", "--cache", "off").stdout
    assert "bound: $" in text and "typical: $" in text
    assert server.count == 8  # the dry runs called nothing


# ---- issue 15 §4: misconfiguration is exit 2, before any call -----------------------------------

def test_misconfiguration_is_exit_2_before_any_call(project: Path, server: ProviderServer) -> None:
    suite = _project(project, server)
    text = suite.read_text()
    suite.write_text(text.replace("models: [coin]", "models: [coin, cion]"))
    done = _llmops(project, "run", "coin", "--cache", "off")
    assert done.returncode == 2 and "unknown model 'cion'" in done.stderr, done.stderr
    suite.write_text(text.replace("models: [coin]", "models: [openai/gpt-4o-mini]"))
    done = _llmops(project, "run", "coin", "--cache", "off")
    assert done.returncode == 2 and "OPENAI_API_KEY" in done.stderr, done.stderr
    suite.write_text(text.replace("inputs: {q: 'question 3'}", "inputs: {}"))
    done = _llmops(project, "run", "coin", "--cache", "off")
    assert done.returncode == 2 and "case c3 [ask@1]" in done.stderr and "'q'" in done.stderr, done.stderr
    dry = _llmops(project, "run", "coin", "--dry-run")
    assert dry.returncode == 2 and "problem: 1 case(s) whose prompt does not render" in dry.stdout
    # The case that does not render is no provider call (issue 19: it was counted as one).
    assert json.loads(_llmops(project, "run", "coin", "--dry-run", "--json").stdout)["calls"] == 7
    assert server.count == 0
