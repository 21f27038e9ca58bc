"""The public queries behind `llmops view`, on real stores written by real runs (fake provider)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from view_helpers import XSS

from llmops.compare import compare_run
from llmops.errors import UserError
from llmops.evaluators.calibration import calibrate, load_labels
from llmops.runner.results import Manifest, UnitResult
from llmops.runner.store import RunPlan
from llmops.view import (
    ReviewTarget,
    cell_detail,
    list_prompts,
    list_runs,
    list_traces,
    load_marks,
    prompt_diff,
    review_summary,
    run_matrix,
    run_progress,
    save_mark,
    side_by_side,
    trace_view,
    word_diff,
)
from llmops.view.queries import unit_trace_id


def test_runs_newest_first_with_outcome_rates_and_filters(view_project: Any, two_runs: Any) -> None:
    first, second = two_runs
    page = list_runs(view_project)
    assert [r.run_id for r in page.runs] == [second.run_id, first.run_id]
    old = page.runs[1]
    assert old.outcome == "failures" and old.done == old.units == 8 and page.suites == ["viewsuite"]
    assert {v.label: v.pass_rate for v in old.variants} == {"rag_answer@1 × fake/a": 0.75,
                                                          "rag_answer@2 × fake/a": 0.75}
    assert [r.run_id for r in list_runs(view_project, outcome="all_passed").runs] == [second.run_id]
    assert [r.run_id for r in list_runs(view_project, outcome="failures").runs] == [first.run_id]
    assert list_runs(view_project, suite="other").runs == []
    paged = list_runs(view_project, limit=1)
    assert paged.more and [r.run_id for r in list_runs(view_project, limit=1, offset=1).runs] == [first.run_id]
    with pytest.raises(UserError, match="unknown outcome"):
        list_runs(view_project, outcome="great")


def test_a_run_in_progress_shows_at_once(view_project: Any) -> None:
    store = view_project.runs
    manifest = Manifest(run_id="live-1", suite="viewsuite", suite_path="x.yaml", llmops_version="0",
                        python_version="3", units=4, started_at=1.0)
    store.create_run(manifest, RunPlan(suite_path="x.yaml", models=["fake/a"], prompts=["p@1"], repeat=1, seed=0))
    assert list_runs(view_project).runs[0].outcome == "running"
    store.add_result("live-1", UnitResult(case_id="c1", prompt="p@1", model="fake/a", status="pass"))
    progress = run_progress(view_project, "live-1")
    assert (progress.status, progress.done, progress.units, progress.counts) == ("running", 1, 4, {"pass": 1})
    assert [r.run_id for r in list_runs(view_project, outcome="running").runs] == ["live-1"]


def test_matrix_filters_and_pages(view_project: Any, two_runs: Any) -> None:
    rid = two_runs[0].run_id
    m = run_matrix(view_project, rid)
    assert [r.case_id for r in m.rows] == ["evil", "no-3", "ok-1", "ok-2"] and m.cases_total == 4
    assert m.variants == [("rag_answer@1", "fake/a"), ("rag_answer@2", "fake/a")]
    no3 = next(r for r in m.rows if r.case_id == "no-3")
    assert [c.status for c in no3.cells if c] == ["fail", "fail"] and no3.cells[0].output == "no sorry"
    assert [r.case_id for r in run_matrix(view_project, rid, failures_only=True).rows] == ["no-3"]
    assert [r.case_id for r in run_matrix(view_project, rid, search="SORRY").rows] == ["no-3"]
    assert [r.case_id for r in run_matrix(view_project, rid, search="ok-").rows] == ["ok-1", "ok-2"]
    assert run_matrix(view_project, rid, search="100%_").rows == []  # LIKE wildcards are literal
    page = run_matrix(view_project, rid, limit=3)
    assert page.more and [r.case_id for r in run_matrix(view_project, rid, offset=3, limit=3).rows] == ["ok-2"]


def test_cell_detail_has_messages_scores_and_trace(view_project: Any, two_runs: Any) -> None:
    rid = two_runs[0].run_id
    c = cell_detail(view_project, rid, "evil", "rag_answer@2", "fake/a")
    assert c.messages_source == "trace" and c.messages[0].role == "system"
    assert XSS in c.messages[-1].content  # returned as stored: the renderer escapes
    assert c.contexts == [XSS] and c.expected == "yes"
    (rep,) = c.repeats
    assert rep.result.output == "yes " + XSS and rep.result.scores[0].name == "has_yes"
    assert rep.result.prompt_tokens > 0 and rep.result.latency_s is not None
    trace = trace_view(view_project, rep.trace_id)
    assert trace.trace.root.metadata["run_id"] == rid and trace.trace.root.metadata["case_id"] == "evil"
    with pytest.raises(UserError, match="no result for case"):
        cell_detail(view_project, rid, "evil", "rag_answer@9", "fake/a")


def test_cell_detail_renders_messages_when_the_run_was_not_traced(view_project: Any, two_runs: Any) -> None:
    view_project.traces.path.unlink()
    c = cell_detail(view_project, two_runs[0].run_id, "no-3", "rag_answer@1", "fake/a")
    assert c.messages_source == "rendered" and c.messages[-1].content.strip().endswith("q3")
    assert c.repeats[0].trace_id is None


def test_side_by_side_puts_changed_verdicts_first_with_compare_numbers(view_project: Any, two_runs: Any) -> None:
    first, second = two_runs
    s = side_by_side(view_project, first.run_id, second.run_id)
    assert (s.a_label, s.b_label, s.changed) == ("A", "B", 1)
    top = s.cases[0]
    assert (top.case_id, top.a_status, top.b_status, top.changed) == ("no-3", "fail", "pass", True)
    assert [(p.op, p.text) for p in top.diff] == [("-", "no"), ("+", "yes"), ("=", " "), ("-", "sorry"),
                                                  ("+", "now")]
    assert [c.changed for c in s.cases] == [True, False, False, False]
    # Two variants of one run: exactly the numbers `llmops compare` prints for that run.
    both = side_by_side(view_project, first.run_id, first.run_id)
    assert (both.a_prompt, both.b_prompt) == ("rag_answer@1", "rag_answer@2")
    expected = compare_run(view_project.runs.load(first.run_id))
    assert both.comparison.pairwise == expected.pairwise and both.comparison.verdict == expected.verdict


def test_word_diff_keeps_every_word() -> None:
    parts = word_diff("the cat sat", "the dog sat down")
    assert "".join(p.text for p in parts if p.op != "+") == "the cat sat"
    assert "".join(p.text for p in parts if p.op != "-") == "the dog sat down"


def test_traces_filters_and_span_tree(view_project: Any, two_runs: Any) -> None:
    everything = list_traces(view_project, limit=100)
    assert len(everything.traces) == 16
    assert len(list_traces(view_project, name="evil").traces) == 4
    assert len(list_traces(view_project, prompt="rag_answer@2").traces) == 8
    assert len(list_traces(view_project, model="fake/a").traces) == 16
    assert list_traces(view_project, model="fake/zzz").traces == []
    assert len(list_traces(view_project, status="ok").traces) == 16
    assert not list_traces(view_project, status="error").traces
    assert list_traces(view_project, since=4e9).traces == []
    page = list_traces(view_project, limit=5)
    assert page.more and len(page.traces) == 5
    view = trace_view(view_project, everything.traces[0].trace_id)
    assert [n.depth for n in view.nodes] == [0, 1] and view.nodes[1].span.kind == "generation"
    assert view.nodes[0].offset == 0 and 0 <= view.nodes[1].offset <= 1 and 0 < view.nodes[1].width <= 1
    with pytest.raises(UserError):
        trace_view(view_project, "ffffffffffff")


def test_prompts_versions_runs_and_diff(view_project: Any, two_runs: Any) -> None:
    rag = next(p for p in list_prompts(view_project) if p.name == "rag_answer")
    assert [v.version for v in rag.versions] == [2, 1] and "production" in rag.versions[0].labels
    assert set(rag.versions[1].runs) == {r.run_id for r in two_runs}
    d = prompt_diff(view_project, "rag_answer")
    assert (d.a, d.b) == (1, 2) and any(line.startswith("+") and "Context" in line for line in d.unified)
    with pytest.raises(UserError):
        prompt_diff(view_project, "../etc")


def test_review_marks_are_the_labels_calibrate_reads(view_project: Any, two_runs: Any, project: Path) -> None:
    rid = two_runs[0].run_id
    units = {u.case_id: u for u in view_project.runs.load(rid).results if u.prompt == "rag_answer@1"}
    save_mark(view_project, ReviewTarget(kind="run", run_id=rid, unit=units["no-3"].key), "fail", note="wrong")
    save_mark(view_project, ReviewTarget(kind="run", run_id=rid, unit=units["ok-1"].key), "fail")
    saved = save_mark(view_project, ReviewTarget(kind="run", run_id=rid, unit=units["ok-1"].key), "pass")
    trace_id = unit_trace_id(view_project, rid, units["evil"], "viewsuite")
    gen = next(s for s in view_project.traces.trace(trace_id).spans if s.kind == "generation")
    saved = save_mark(view_project, ReviewTarget(kind="trace", trace_id=trace_id, span_id=gen.span_id), "pass")
    path = project / "review" / "labels.jsonl"
    assert saved.path == str(path) and saved.labelled == 3  # marking again replaced the row
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows)
    no3 = next(r for r in rows if r["metadata"].get("case_id") == "no-3")
    assert (no3["output"], no3["label"], no3["inputs"], no3["metadata"]["note"]) == ("no sorry", "fail",
                                                                                       {"question": "q3"}, "wrong")
    labels = load_labels(path)
    assert sorted((r.output, r.label) for r in labels) == [("no sorry", False), ("yes " + XSS, True),
                                                           ("yes indeed", True)]
    report = calibrate("contains", path, params={"value": "yes"}, save=True, root=project)
    assert report.n == 3 and report.accuracy == 1.0
    marks = load_marks(view_project)
    assert marks[f"run:{rid}:{units['no-3'].key}"].label == "fail"
    summary = review_summary(view_project)
    (contains,) = summary.evaluators
    assert (summary.labelled, summary.failed, contains.evaluator, contains.labelled, contains.agree) == \
        (3, 1, "contains", 3, 3)  # the trace generation carries the unit's scores too
    assert contains.last_calibration is not None and contains.calibrated_n == 3
    save_mark(view_project, ReviewTarget(kind="run", run_id=rid, unit=units["no-3"].key), "clear")
    assert review_summary(view_project).labelled == 2


def test_review_refuses_unknown_targets_and_labels(view_project: Any, two_runs: Any) -> None:
    rid = two_runs[0].run_id
    with pytest.raises(UserError, match="no unit"):
        save_mark(view_project, ReviewTarget(kind="run", run_id=rid, unit="nope"), "pass")
    with pytest.raises(UserError, match="label must be"):
        save_mark(view_project, ReviewTarget(kind="run", run_id=rid, unit="nope"), "maybe")


def test_messages_show_tool_calls_and_results() -> None:
    from llmops.view.queries import message_view

    call = message_view({"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": '{"q": "x"}'}}]})
    assert (call.content, call.tool_calls[0].name, call.tool_calls[0].arguments) == ("", "lookup", '{"q": "x"}')
    result = message_view({"role": "tool", "content": "42", "tool_call_id": "c1", "name": "lookup"})
    assert (result.tool_call_id, result.name, result.content) == ("c1", "lookup", "42")
    recorded = message_view({"role": "assistant", "tool_calls": [  # as traces record a completion's calls
        {"id": "c2", "name": "lookup", "raw_arguments": '{"q":1}', "arguments": {"q": 1}, "error": None}]})
    assert (recorded.tool_calls[0].name, recorded.tool_calls[0].arguments) == ("lookup", '{"q":1}')
    parts = message_view({"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "text", "text": "yo"}]})
    assert parts.content == "hi\nyo"


def test_cell_shows_the_tool_calls_a_model_answered_with(project: Path, settings: Any, client: Any) -> None:
    from view_helpers import answers, make_run

    from llmops.llm.fake import FakeReply, FakeToolCall
    from llmops.view import open_project

    def with_tool(messages: list[dict[str, Any]], params: dict[str, Any]) -> Any:
        if "q1" in messages[-1]["content"]:
            return FakeReply(text="yes", tool_calls=(FakeToolCall("lookup", {"city": "<b>Paris</b>"}, id="c7"),))
        return answers(messages, params)

    run = make_run(project, settings, client, responder=with_tool)
    p = open_project(settings=settings)
    try:
        c = cell_detail(p, run.run_id, "ok-1", "rag_answer@1", "fake/a")
        assert [(t.id, t.name, json.loads(t.arguments)) for t in c.tool_calls] == [("c7", "lookup",
                                                                                    {"city": "<b>Paris</b>"})]
        assert c.finish_reason == "tool_calls"
    finally:
        p.close()
