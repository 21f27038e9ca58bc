"""Baseline files: round trip, stable bytes, no noise or secrets, corruption is an error."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from regression_factories import MODEL, PROMPT, make_run, score, unit

from llmops.errors import StoreError
from llmops.regression import (
    Baseline,
    baseline_from_run,
    baseline_path,
    dumps_baseline,
    read_baseline,
    write_baseline,
)
from llmops.runner.results import RunResult, UnitResult


def _run(seed: int = 0, **manifest_kw: object) -> RunResult:
    rng = random.Random(seed)
    results: list[UnitResult] = []
    for i in range(12):
        for r in range(3):
            # Values like 0.1 + 0.2 make naive float sums order-dependent: a good probe.
            sim = rng.choice([0.1, 0.2, 0.7, 0.3, None]) if i != 5 else None
            outcome = rng.random() < 0.7 if i != 5 else None
            results.append(unit(f"case-{i:02d}", outcome, repeat=r, extra=[score("similarity", sim, 0.25)],
                                latency_s=rng.random(), cost_usd=rng.random() / 100,
                                started_at=1_700_000_000 + rng.random(), cached=rng.random() < 0.5))
    results.append(unit("case-err", "error"))
    return make_run(results, **manifest_kw)


def test_baseline_path(settings) -> None:  # type: ignore[no-untyped-def]
    assert baseline_path(settings, "smoke") == settings.evalsets_path / "baselines" / "smoke.json"


def test_round_trip(tmp_path: Path) -> None:
    run = _run()
    path = tmp_path / "nested" / "suite.json"
    written = write_baseline(run, path)
    loaded = read_baseline(path)
    assert loaded == written == baseline_from_run(run)
    assert isinstance(loaded, Baseline)
    # Per case: counts, pass rate and per-evaluator means over repeats.
    record = next(c for c in loaded.cases if c.case_id == "case-00")
    units = [u for u in run.results if u.case_id == "case-00"]
    assert record.units == 3
    assert record.passed == sum(u.status == "pass" for u in units)
    assert record.pass_rate == pytest.approx(record.passed / (record.passed + record.failed))
    sims = [s.value for u in units for s in u.scores if s.name == "similarity" and s.value is not None]
    assert record.scores["similarity"].mean == pytest.approx(sum(sims) / len(sims))
    assert record.scores["similarity"].measured + record.scores["similarity"].unmeasured == 3
    unmeasured = next(c for c in loaded.cases if c.case_id == "case-05")
    assert (unmeasured.unmeasured, unmeasured.pass_rate) == (3, None)
    err = next(c for c in loaded.cases if c.case_id == "case-err")
    assert err.errors == 1
    (variant,) = loaded.summary
    assert (variant.prompt, variant.model, variant.units) == (PROMPT, MODEL, 37)
    assert loaded.source.prompts == {PROMPT: "sha256:" + PROMPT}
    assert loaded.source.git_commit == "abc123"
    assert loaded.source.evaluators[0]["version"] == "1"


def test_bytes_are_stable_and_free_of_run_noise(tmp_path: Path) -> None:
    run = _run()
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    write_baseline(run, a)
    write_baseline(run, b)
    assert a.read_bytes() == b.read_bytes()
    # Same outcomes, different run id, clock, latencies, costs, cache hits, completion order.
    rng = random.Random(9)
    shuffled = [u.model_copy(update={"latency_s": rng.random(), "started_at": 2e9, "cost_usd": 1.0,
                                     "cached": not u.cached, "output": "other text"})
                for u in run.results]
    rng.shuffle(shuffled)
    other = RunResult(manifest=run.manifest.model_copy(update={
        "run_id": "20270101-121212-ffffff", "started_at": 5.0, "ended_at": 9.0, "cost_usd": 3.0,
        "latency_p50_s": 1.0, "cache_hits": 7, "provider_calls": 99}), results=shuffled)
    c = tmp_path / "c.json"
    write_baseline(other, c)
    assert c.read_bytes() == a.read_bytes()
    text = a.read_text(encoding="utf-8")
    assert text.endswith("}\n")
    assert "20260101-000000-abcdef" not in text and "latency" not in text and "started_at" not in text
    assert list(json.loads(text)) == sorted(json.loads(text))
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write leaves no temp file behind


def test_changed_outcome_changes_the_file(tmp_path: Path) -> None:
    run = _run()
    flipped = [u.model_copy(update={"status": "fail" if u.status == "pass" else u.status})
               if u.case_id == "case-01" else u for u in run.results]
    assert dumps_baseline(baseline_from_run(run)) != dumps_baseline(
        baseline_from_run(RunResult(manifest=run.manifest, results=flipped)))


def test_no_secrets_in_baseline(tmp_path: Path) -> None:
    run = _run(params={"temperature": 0, "api_key": "sk-live-123", "extra": {"auth_token": "tok-9"}})
    path = tmp_path / "b.json"
    write_baseline(run, path)
    text = path.read_text(encoding="utf-8")
    assert "sk-live-123" not in text and "tok-9" not in text
    assert read_baseline(path).source.params == {"temperature": 0, "extra": {}}


@pytest.mark.parametrize(("content", "message"), [
    ("", "empty"),
    ("   \n", "empty"),
    (None, "truncated"),  # the first 60% of a real baseline: a half-written file
    ('{"cases": nope}', "not valid JSON"),
    ("<<<<<<< HEAD\n{}\n=======\n{}\n>>>>>>> branch\n", "merge conflict"),
    ('{"format_version": 9, "source": {"suite": "s"}}', "format_version 9"),
    ('{"format_version": 1}', "source"),
    ("[1, 2]", "corrupted"),
])
def test_damaged_baseline_is_a_store_error_naming_the_file(tmp_path: Path, content: str | None,
                                                           message: str) -> None:
    path = tmp_path / "baselines" / "suite.json"
    if content is None:
        write_baseline(_run(), path)
        full = path.read_text(encoding="utf-8")
        content = full[: int(len(full) * 0.6)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content, encoding="utf-8")
    with pytest.raises(StoreError) as info:
        read_baseline(path)
    assert str(path) in str(info.value)
    assert message in str(info.value)
    assert info.value.hint and "--update-baseline" in info.value.hint


def test_inconsistent_baseline_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    write_baseline(_run(), path)
    data = json.loads(path.read_text(encoding="utf-8"))
    data["cases"][0]["passed"] += 1  # a hand edit that breaks the arithmetic
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(StoreError, match=r"b\.json: baseline is corrupted: cases\.0"):
        read_baseline(path)
    data = json.loads(dumps_baseline(baseline_from_run(_run())))
    data["cases"].append(data["cases"][0])  # a bad merge that duplicates a case
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(StoreError, match="appears twice"):
        read_baseline(path)


def test_missing_and_non_utf8_baseline(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"nope\.json: baseline file not found"):
        read_baseline(tmp_path / "nope.json")
    bad = tmp_path / "bin.json"
    bad.write_bytes(b'{"a": "\xff\xfe"}')
    with pytest.raises(StoreError, match=r"bin\.json: baseline is corrupted \(not UTF-8"):
        read_baseline(bad)
