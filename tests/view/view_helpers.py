"""Real runs for the viewer tests: the fake provider through the real LiteLLM path, traced locally."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmops.llm import fake
from llmops.runner.engine import run_suite

XSS = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>"\'</textarea>'
SUITE = """\
name: viewsuite
prompts: [rag_answer@1, rag_answer@2]
models: [fake/a]
evaluators:
  - contains: {name: has_yes, value: "yes"}
cases:
  - {id: ok-1, inputs: {question: "q1"}, expected: "yes"}
  - {id: ok-2, inputs: {question: "q2"}, expected: "yes"}
  - {id: evil, inputs: {question: "PAYLOAD"}, expected: "yes", contexts: ["PAYLOAD"]}
  - {id: no-3, inputs: {question: "q3"}, expected: "yes"}
"""


def answers(messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
    text = messages[-1]["content"]
    if "<script>" in text:
        return "yes " + XSS
    return "no sorry" if "q3" in text else "yes indeed"


def make_run(project: Path, settings: Any, client: Any, *, responder: Any = answers, repeat: int = 1) -> Any:
    """A real run of the fake provider through the real LiteLLM path, traced to the local store."""
    fake.script("fake/a", responder=responder)
    path = project / "evalsets" / "viewsuite.yaml"
    path.write_text(SUITE.replace("PAYLOAD", XSS.replace('"', '\\"')), encoding="utf-8")
    from llmops.runner.engine import run_tracer

    run = run_suite(path, settings=settings, client=client, progress=False, repeat=repeat, cache="off",
                    tracer=run_tracer(settings))
    from llmops.tracing.tracer import reset_tracing

    reset_tracing()  # flush the traces to the local store
    return run

