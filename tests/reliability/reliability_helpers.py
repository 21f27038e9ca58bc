"""Shared helpers of the reliability tests: a tiny echo prompt, small suites, bounded clients."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from llmops.config import ModelAlias, Settings
from llmops.llm.client import LLMClient
from llmops.llm.retry import RetryPolicy
from llmops.runner.results import RunResult
from llmops.runner.store import RunStore

KEY = "sk-test-reliability-0123456789abcdef"
# What the reliability tests tried and found (secrets planted / found, bad inputs tried / exit 2
# with a location, spans sent / delivered, ...). tests/conftest.py gathers them from every xdist
# worker, prints them at the end of the session and fails the session when they disagree
# (COUNT_RULES).
COUNTS: Counter[str] = Counter()
# (count, what it must equal: another count's name, or a number).
COUNT_RULES: tuple[tuple[str, str | int], ...] = (
    ("secrets found in artifacts", 0),
    ("bad inputs: exit 2 with a location", "bad inputs tried"),
    ("template bombs refused", "template bombs tried"),
    ("short processes: spans delivered", "short processes: spans sent"),
    ("pushed later: spans delivered", "pushed later: spans sent"),
    ("retry: provider calls reported (manifest)", "retry: provider calls answered by the server"),
    ("calls across processes: reported (manifest)", "calls across processes: answered by the server"),
)


def count_problems(counts: Counter[str]) -> list[str]:
    """The COUNT_RULES that ``counts`` break (a rule whose counts were not measured is skipped)."""
    problems = []
    for name, expected in COUNT_RULES:
        if name not in counts and (isinstance(expected, int) or expected not in counts):
            continue
        want = expected if isinstance(expected, int) else counts[expected]
        if counts[name] != want:
            problems.append(f"{name}: {counts[name]}, expected {want}" +
                            ("" if isinstance(expected, int) else f" ({expected})"))
    return problems
MAX_RETRIES = 2
ATTEMPTS = MAX_RETRIES + 1


def echo_prompt(project: Path) -> None:
    """``prompts/echo/v1.jinja``: the user message is the case's ``q``."""
    folder = project / "prompts" / "echo"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "v1.jinja").write_text("---\ninputs:\n  q: {type: string}\n---\n{{ q }}\n", encoding="utf-8")


def write_suite(project: Path, name: str, n: int, model: str, *, evaluators: str = "[contains]",
                extra: str = "") -> Path:
    """A suite of ``n`` cases ``c{i}`` asking ``q{i}`` and expecting ``q{i}`` back (echo passes)."""
    echo_prompt(project)
    cases = "\n".join(f"  - {{id: c{i}, inputs: {{q: 'q{i}'}}, expected: 'q{i}'}}" for i in range(n))
    path = project / "evalsets" / f"{name}.yaml"
    path.write_text(f"name: {name}\nprompt: echo@1\nmodels: [{model}]\nevaluators: {evaluators}\n{extra}"
                    f"cases:\n{cases}\n", encoding="utf-8")
    return path


def bounded_client(settings: Settings, *, timeout_s: float = 5.0, concurrency: int = 4,
                   server_base: str | None = None, **kwargs: Any) -> LLMClient:
    """A client with a small, fast retry policy (at most ``ATTEMPTS`` attempts per call).

    With ``server_base``, the alias ``oai`` is an OpenAI model served by a local ProviderServer.
    """
    if server_base is not None:
        models = {"oai": ModelAlias(model="openai/gpt-4o-mini", params={"api_base": server_base, "api_key": KEY})}
        settings = settings.model_copy(update={"models": models})
    retry = RetryPolicy(max_retries=MAX_RETRIES, base_delay_s=0.01, max_delay_s=0.05, max_total_s=1.0)
    return LLMClient(settings, retry=retry, timeout_s=timeout_s, concurrency=concurrency, **kwargs)


def assert_one_record_per_unit(run: RunResult, store: RunStore, units: int) -> None:
    """Exactly one result per unit, in the returned run and in the store; the run completed."""
    keys = Counter(r.key for r in run.results)
    assert len(keys) == units and set(keys.values()) == {1}, keys
    stored = Counter(r.key for r in store.results(run.manifest.run_id))
    assert stored == keys
    assert run.manifest.status == "completed"
    for r in run.results:
        assert r.status in ("pass", "fail", "unmeasured", "error"), r
        if r.status == "error":
            assert r.error, f"an error record must say what went wrong: {r!r}"
