"""End to end: run_suite with the fake provider, a committed baseline on disk, judge_run."""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from pathlib import Path
from typing import Any

from llmops.evalsets.models import Gate
from llmops.llm import fake
from llmops.regression import baseline_path, judge_run, read_baseline, write_baseline
from llmops.runner.engine import run_suite

N_CASES = 24
SUITE = """\
name: sentiment
prompt: classify_sentiment@1
models: [fake/x]
repeat: 2
evaluators:
  - contains: {value: positive}
gate: {tolerance: 0.05, alpha: 0.05}
cases:
""" + "".join(f"  - id: r{i:02d}\n    inputs: {{review: 'review number {i:02d}'}}\n" for i in range(N_CASES))


class Responder:
    """Answers "positive" (passes ``contains``) with a per-case probability.

    The draw is a hash of (run tag, case, n-th call for that case), so the outcomes of a run
    do not depend on the order in which concurrent calls arrive.
    """

    def __init__(self) -> None:
        self.tag = ""
        self.probability: dict[str, float] = {}
        self.calls: Counter[str] = Counter()

    def __call__(self, messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
        text = str(messages[-1]["content"])
        match = re.search(r"review number (\d+)", text)
        assert match, text
        case = f"r{match.group(1)}"
        nth = self.calls[f"{self.tag}|{case}"]
        self.calls[f"{self.tag}|{case}"] += 1
        digest = hashlib.sha256(f"{self.tag}|{case}|{nth}".encode()).digest()
        u = int.from_bytes(digest[:8], "big") / 2**64
        return "positive" if u < self.probability.get(case, 0.9) else "negative, sorry"


def test_run_suite_baseline_and_verdict(project: Path, settings, client) -> None:  # type: ignore[no-untyped-def]
    (project / "evalsets" / "sentiment.yaml").write_text(SUITE, encoding="utf-8")
    responder = Responder()
    fake.script("fake/x", responder=responder)

    def run(tag: str, broken: int = 0):  # type: ignore[no-untyped-def]
        responder.tag = tag
        responder.probability = {f"r{i:02d}": (0.1 if i < broken else 0.9) for i in range(N_CASES)}
        return run_suite("sentiment", settings=settings, client=client, cache="off", progress=False)

    reference = run("baseline")
    assert len(reference.results) == N_CASES * 2
    path = baseline_path(settings, "sentiment")
    assert path == project / "evalsets" / "baselines" / "sentiment.json"
    write_baseline(reference, path)
    baseline = read_baseline(path)
    assert baseline.source.prompts == reference.manifest.prompts
    assert baseline.source.evaluators[0]["kind"] == "contains"
    gate = Gate(tolerance=0.05, alpha=0.05)

    same = judge_run(run("rerun"), gate, baseline)
    assert same.passed, same.reasons
    rate = same.variants[0].comparisons[0]
    assert rate.test == "sign-flip-exact" and rate.pairs == N_CASES
    assert rate.worse + rate.better > 0  # the reruns really differ (noisy outputs)

    # A third of the cases break (pass probability 0.9 -> 0.1): a ~27-point drop expected.
    broken = judge_run(run("broken", broken=8), gate, baseline)
    assert not broken.passed and broken.exit_code == 1
    rate = broken.variants[0].comparisons[0]
    assert rate.regressed and rate.difference is not None and rate.difference < -0.15
    regressed_ids = {c.case_id for c in broken.variants[0].regressed_cases}
    assert len({f"r{i:02d}" for i in range(8)} & regressed_ids) >= 6
    assert any("pass rate regressed" in r for r in broken.reasons)
