"""Production traces → cases and drift stay true (issue 23 §5), through the CLI against a loopback provider."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tracing_helpers import PROMPT_META, record

from llmops.cli import main
from llmops.config import Settings
from llmops.evalsets.loader import load_suite
from llmops.testing import Fault, ProviderServer
from llmops.tracing import TraceStore, span

REPO = Path(__file__).resolve().parents[2]
KEY = "sk-test-production-0123456789abcdef"

CALLS = """
import json, sys, time
import llmops.llm.client as client_module

original, imported_at = client_module.load_litellm, []

def load_litellm():
    module = original()
    if not imported_at:
        imported_at.append(time.time())  # when this process finished importing LiteLLM
    return module

client_module.load_litellm = load_litellm
import llmops

for i in range(int(sys.argv[1])):
    try:
        llmops.complete("rag_answer@2", {"question": f"{sys.argv[2]} {i}?", "contexts": ["fact"]}, model="oai")
    except llmops.LLMOpsError:
        pass
print(json.dumps({"imported_at": imported_at[0]}))
"""


def test_latency_cost_and_eval_runs_in_drift_and_score(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with ProviderServer(api_key=KEY, latency_s=0.02) as server:
        with (project / "pyproject.toml").open("a", encoding="utf-8") as f:
            f.write(f'\n[tool.llmops.models]\noai = {{ model = "openai/gpt-4o-mini", params = {{ api_base = '
                    f'"{server.openai_base}" }} }}\n')
        env = {**os.environ, "PYTHONPATH": str(REPO), "OPENAI_API_KEY": KEY, "LLMOPS_CACHE": "off"}

        def calls(n: int, tag: str) -> float:
            out = subprocess.run([sys.executable, "-c", CALLS, str(n), tag], cwd=project, env=env,
                                 capture_output=True, text=True, timeout=120)
            assert out.returncode == 0, out.stderr
            return float(json.loads(out.stdout.strip().splitlines()[-1])["imported_at"])

        imported_ok = calls(4, "ok")
        server.script(Fault.error(400), Fault.error(400))
        imported_err = calls(2, "err")
    store = TraceStore(project / ".llmops" / "traces.sqlite")
    gens = store.spans(kind="generation")
    assert len(gens) == 6
    ok = [g for g in gens if g.status == "ok"]
    failed = [g for g in gens if g.status == "error"]
    assert len(ok) == 4 and len(failed) == 2
    # Latency is measured from the request: no process's first call includes the LiteLLM import.
    first_ok = min(ok, key=lambda g: g.start_time)
    first_err = min(failed, key=lambda g: g.start_time)
    assert first_ok.start_time >= imported_ok and first_err.start_time >= imported_err
    # An errored call's cost is unknown, not $0.
    assert all(g.cost_usd is None for g in failed) and all(g.cost_usd for g in ok)

    # An eval run of the same prompt: its calls are llmops's own, not production traffic.
    suite = project / "evalsets" / "prod.yaml"
    suite.write_text("name: prod\nprompt: rag_answer@2\nmodels: [fake/echo]\nevaluators: [contains]\ncases:\n"
                     "  - {id: a, inputs: {question: 'q1', contexts: [x]}, expected: q1}\n"
                     "  - {id: b, inputs: {question: 'q2', contexts: [x]}, expected: q2}\n", encoding="utf-8")
    run = subprocess.run([sys.executable, "-m", "llmops", "run", str(suite), "--no-progress"], cwd=project,
                         env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert len(store.spans(kind="generation")) == 8

    def window(*extra: str) -> dict[str, Any]:
        assert main(["traces", "drift", "--window", "1h", "--windows", "1", "--json", *extra]) == 0
        versions = {v["prompt"]: v for v in json.loads(capsys.readouterr().out)["versions"]}
        return dict(versions["rag_answer@2"]["windows"][0])

    production = window()
    assert production["calls"] == 6 and production["errors"] == 2
    assert production["cost_mean_usd"] == pytest.approx(statistics.fmean(g.cost_usd or 0 for g in ok))
    assert window("--eval-runs")["calls"] == 8

    assert main(["traces", "score", "-e", "length:max=10000", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["span_id"] for r in rows} == {g.span_id for g in ok}
    assert main(["traces", "score", "-e", "length:max=10000", "--json", "--eval-runs"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 6


def test_export_writes_a_suite_per_prompt_with_the_production_model(settings: Settings, make_tracer: Any,
                                                                     project: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    tracer = make_tracer(settings)
    summarize = {"prompt": "summarize@1", "prompt_name": "summarize", "prompt_version": 1, "prompt_hash": "cd" * 32}
    for i in range(2):
        with span("handler", tracer=tracer):
            tracer(record(text=f"answer {i}", model="openai/gpt-4o-mini", metadata={
                **PROMPT_META, "prompt_inputs": {"question": f"q{i}?", "contexts": ["c"]}}))
        with span("handler", tracer=tracer):
            tracer(record(text=f"summary {i}", model="anthropic/claude-haiku-4-5", metadata={
                **summarize, "prompt_inputs": {"text": f"long text {i}", "max_words": 5}}))
    assert tracer.flush(5)
    target = project / "evalsets" / "from_prod.yaml"
    assert main(["traces", "export", "--to", str(target)]) == 0
    out = capsys.readouterr().out
    other = project / "evalsets" / "from_prod-summarize.yaml"
    assert f"created {target}: 2 case(s) added" in out and f"created {other}: 2 case(s) added" in out, out
    rag, summ = load_suite(target), load_suite(other)
    assert rag.suite.prompts == ["rag_answer@2"] and rag.suite.models == ["openai/gpt-4o-mini"]
    assert summ.suite.prompts == ["summarize@1"] and summ.suite.models == ["anthropic/claude-haiku-4-5"]
    assert all(set(c.inputs) == {"question", "contexts"} for c in rag.cases)
    assert all(set(c.inputs) == {"text", "max_words"} for c in summ.cases)
    # Exporting again adds nothing anywhere.
    assert main(["traces", "export", "--to", str(target)]) == 0
    assert capsys.readouterr().out.count("0 case(s) added, 2 already there") == 2
