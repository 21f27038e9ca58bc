"""`llmops traces ...` and the library functions behind it: list, show, export, score, drift."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

import pytest
from tracing_helpers import PROMPT_META, record

from llmops.cli import main
from llmops.config import Settings
from llmops.errors import ProviderError
from llmops.evalsets.loader import load_suite
from llmops.testing.langfuse_receiver import LangfuseReceiver
from llmops.tracing import Tracer, TraceStore, span
from llmops.tracing.monitor import drift, parse_duration, parse_since, prompt_filter
from llmops.tracing.store import ScoreRow, SpanRow


def traced_calls(tracer: Tracer, n: int = 3) -> list[str]:
    ids = []
    for i in range(n):
        with span("handler", tracer=tracer, user_id=f"u{i}") as root:
            meta = {**PROMPT_META, "prompt_inputs": {"question": f"question {i}?", "contexts": [f"fact {i}"]}}
            if i == 2:
                err = ProviderError("upstream 500", model="openai/gpt-4o-mini", status_code=500)
                tracer(record(text=None, error=err, metadata=meta))
            else:
                tracer(record(text=f"answer {i}", metadata=meta))
        ids.append(root.trace_id)
    assert tracer.flush(5)
    return ids


def test_list_and_show(settings: Settings, make_tracer: Any, capsys: pytest.CaptureFixture[str],
                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "240")
    ids = traced_calls(make_tracer(settings))
    assert main(["traces", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [t["trace_id"] for t in listed] == ids[::-1]
    assert main(["traces", "list", "--errors", "--prompt", "rag_answer@2", "--json"]) == 0
    assert [t["trace_id"] for t in json.loads(capsys.readouterr().out)] == [ids[2]]
    assert main(["traces", "list", "--prompt", "rag_answer@1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["traces", "list"]) == 0
    table = capsys.readouterr().out
    assert ids[0][:12] in table and "rag_answer@2" in table
    assert main(["traces", "show", ids[2][:8]]) == 0
    tree = capsys.readouterr().out
    for text in ("handler", "rag_answer@2", "ProviderError HTTP 500", "upstream 500", "user=u2", "in: user: hi"):
        assert text in tree, text
    assert main(["traces", "show", ids[0]]) == 0
    tree = capsys.readouterr().out
    for text in ("7→2 tok", "$0.000100", "250 ms", "out: answer 0"):
        assert text in tree, text
    assert main(["traces", "show", "nope"]) == 2
    assert "no trace 'nope'" in capsys.readouterr().err
    assert main(["traces", "status"]) == 0
    assert "3 traces" in capsys.readouterr().out


def test_export_creates_then_appends_without_duplicates(settings: Settings, make_tracer: Any, project: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    tracer = make_tracer(settings)
    ids = traced_calls(tracer)
    tracer.score(ids[0], "faithfulness", 0.2)
    tracer.score(ids[1], "faithfulness", 0.9)
    assert tracer.flush(5)
    target = project / "evalsets" / "from_prod.yaml"
    assert main(["traces", "export", "--to", str(target), "--below", "faithfulness=0.5"]) == 0
    assert "1 case(s) added" in capsys.readouterr().out
    suite = load_suite(target)
    assert suite.suite.prompts == ["rag_answer@2"]
    (case,) = suite.cases
    assert case.id == f"trace-{ids[0][:12]}" and case.inputs == {"question": "question 0?", "contexts": ["fact 0"]}
    assert case.metadata["production_output"] == "answer 0" and case.metadata["scores"] == {"faithfulness": 0.2}
    assert case.tags == ["from-trace"]
    # Appending keeps the user's comments and never duplicates a trace.
    target.write_text(target.read_text().replace("cases:\n", "# reviewed by ana\ncases:\n"))
    assert main(["traces", "export", "--to", str(target), "--prompt", "rag_answer"]) == 0
    out = capsys.readouterr().out
    assert "2 case(s) added, 1 already there" in out
    text = target.read_text()
    assert "# reviewed by ana" in text
    cases = {c.id: c for c in load_suite(target).cases}
    assert len(cases) == 3 and cases[f"trace-{ids[2][:12]}"].tags == ["from-trace", "error"]


def test_export_into_an_existing_hand_written_suite(settings: Settings, make_tracer: Any, project: Path) -> None:
    ids = traced_calls(make_tracer(settings), n=1)
    target = project / "evalsets" / "hand.yaml"
    target.write_text("name: hand\nprompt: rag_answer@2\n# my cases\ncases:\n    - id: mine\n"
                      "      inputs: {question: q}\ngate:\n  min_pass_rate: 0.5\n")
    assert main(["traces", "export", "--to", str(target), "--ids", ids[0]]) == 0
    assert [c.id for c in load_suite(target).cases] == ["mine", f"trace-{ids[0][:12]}"]


def test_export_without_usable_calls_is_a_clear_error(settings: Settings, make_tracer: Any, project: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    tracer = make_tracer(settings)
    with span("plain", tracer=tracer):
        tracer(record(metadata={"purpose": "judge"}))
    assert tracer.flush(5)
    assert main(["traces", "export", "--to", str(project / "evalsets" / "x.yaml")]) == 2
    assert "recorded inputs" in capsys.readouterr().err
    assert not (project / "evalsets" / "x.yaml").exists()


def test_score_local_writes_scores_back(settings: Settings, make_tracer: Any,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    ids = traced_calls(make_tracer(settings))
    assert main(["traces", "score", "-e", "contains:value=answer", "-e", "length:max=8", "--sample", "10"]) == 0
    out = capsys.readouterr().out
    assert "scored 2 call(s)" in out  # the failed call has no output to score
    store = TraceStore(settings.path(settings.trace_path))
    scores = store.scores(ids)
    assert {(s.trace_id, s.name, s.value) for s in scores} == {
        (ids[0], "contains", 1.0), (ids[1], "contains", 1.0), (ids[0], "length", 1.0), (ids[1], "length", 1.0)}
    gen_ids = {g.span_id for t in ids[:2] for g in store.trace(t).generations}
    assert {s.span_id for s in scores} == gen_ids and {s.source for s in scores} == {"traces-score"}
    assert main(["traces", "score", "-e", "contains:value=answer", "--prompt", "summarize"]) == 2


def test_score_from_langfuse_writes_back_to_langfuse(lf_settings: Settings, receiver: LangfuseReceiver,
                                                     make_tracer: Any, capsys: pytest.CaptureFixture[str]) -> None:
    tracer = make_tracer(lf_settings)
    ids = traced_calls(tracer)
    assert receiver.wait_for(lambda: len(receiver.spans) >= 6, 10)
    tracer.shutdown(5)
    assert main(["traces", "score", "--source", "langfuse", "-e", "contains:value=answer 1"]) == 0
    assert "scored 2 call(s)" in capsys.readouterr().out
    assert receiver.wait_for(lambda: len(receiver.scores) >= 2, 10)
    got = {(s["traceId"], s["value"]) for s in receiver.scores}
    assert got == {(ids[0], 0.0), (ids[1], 1.0)}
    gen = {s.trace_id: s.span_id for s in receiver.spans if s.observation_type == "generation"}
    assert {s["observationId"] for s in receiver.scores} == {gen[ids[0]], gen[ids[1]]}
    # ...and export reads the same calls back through the observations API.
    target = lf_settings.evalsets_path / "lf.yaml"
    assert main(["traces", "export", "--source", "langfuse", "--to", str(target), "--errors"]) == 0
    (case,) = load_suite(target).cases
    assert case.id == f"trace-{ids[2][:12]}" and case.inputs["question"] == "question 2?"


def _synthetic(store: TraceStore, now: float, *, ref: tuple[str, int], window: int, n: int, latency: float,
               quality: float, errors: int = 0, seed: int = 0) -> None:
    rng = random.Random(seed)
    spans, scores = [], []
    for i in range(n):
        start = now - (2 - window) * 3600 + 60 + i * 10
        tid = f"{seed:04x}{window:04x}{i:024x}"
        sid = f"{seed:04x}{window:04x}{i:08x}"
        spans.append(SpanRow(trace_id=tid, span_id=sid, parent_id=None, name="gen", kind="generation", start_time=start,
                             end_time=start + latency * rng.uniform(0.9, 1.1),
                             status="error" if i < errors else "ok", prompt_name=ref[0], prompt_version=ref[1],
                             cost_usd=0.001))
        scores.append(ScoreRow(score_id=tid, trace_id=tid, span_id=sid, name="faithfulness",
                               value=min(1.0, max(0.0, quality + rng.uniform(-0.05, 0.05))), status="pass",
                               created_at=start))
    store.add(spans, scores)


def test_drift_flags_a_significant_change(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    store = TraceStore(settings.path(settings.trace_path))
    now = time.time()
    _synthetic(store, now, ref=("rag_answer", 2), window=0, n=30, latency=0.5, quality=0.9, seed=1)
    _synthetic(store, now, ref=("rag_answer", 2), window=1, n=30, latency=1.5, quality=0.6, errors=6, seed=2)
    _synthetic(store, now, ref=("rag_answer", 1), window=0, n=30, latency=0.5, quality=0.8, seed=3)
    _synthetic(store, now, ref=("rag_answer", 1), window=1, n=30, latency=0.5, quality=0.8, seed=4)
    report = drift(store, window_s=3600, windows=2, now=now)
    by_ref = {v.prompt: v for v in report.versions}
    assert set(by_ref) == {"rag_answer@1", "rag_answer@2"}
    flags = {f.metric: f for f in by_ref["rag_answer@2"].flags}
    assert set(flags) == {"latency_s", "quality:faithfulness", "error_rate"}
    assert all(f.direction == "worse" and f.p_value < 0.05 for f in flags.values())
    assert by_ref["rag_answer@1"].flags == []
    last = by_ref["rag_answer@2"].windows[-1]
    assert last.calls == 30 and last.errors == 6 and last.quality["faithfulness"] == pytest.approx(0.6, abs=0.03)
    assert main(["traces", "drift", "--window", "1h", "--windows", "2", "--check"]) == 1
    out = capsys.readouterr().out
    assert "worse: latency_s" in out and "rag_answer@1" in out
    assert main(["traces", "drift", "--window", "1h", "--windows", "2", "--prompt", "rag_answer@1", "--check"]) == 0


def test_time_and_prompt_parsing(settings: Settings) -> None:
    assert parse_duration("90s") == 90 and parse_duration("2h") == 7200 and parse_duration("1w") == 604800
    assert parse_since("1d", now=100_000.0) == 100_000.0 - 86400
    assert parse_since("2026-01-31") == 1769817600.0
    assert prompt_filter("rag_answer@production", settings) == ("rag_answer", 2)
    assert prompt_filter("rag_answer", settings) == ("rag_answer", None)
    from llmops.errors import UserError

    with pytest.raises(UserError, match="invalid time"):
        parse_since("yesterday-ish")


def test_status_reports_spans_the_exporter_did_not_deliver(lf_settings: Settings, receiver: LangfuseReceiver,
                                                           make_tracer: Any, capsys: pytest.CaptureFixture[str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "240")
    delivering = make_tracer(lf_settings)
    traced_calls(delivering, n=2)  # a handler span and its generation each
    delivering.shutdown(timeout_s=10)
    store = TraceStore(lf_settings.path(lf_settings.trace_path))
    (first,) = store.deliveries()
    assert (first.exporter, first.spans, first.delivered) == ("langfuse", 4, 4)
    assert main(["traces", "status"]) == 0
    out = capsys.readouterr().out
    assert "4 of 4 span(s) delivered" in out and "not delivered" not in out

    receiver.mode = "503"  # Langfuse answers, but refuses every export
    failing = make_tracer(lf_settings)
    traced_calls(failing, n=3)
    failing.shutdown(timeout_s=10)
    latest, earlier = store.deliveries()
    assert (latest.spans, latest.delivered, latest.undelivered) == (6, 0, 6) and earlier == first
    assert main(["traces", "status"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "last export to langfuse" in out and "0 of 6 span(s) delivered" in out
    assert "6 span(s) not delivered in the last 2 traced run(s)" in out
