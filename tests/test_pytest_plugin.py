from __future__ import annotations

import json
import sqlite3
import xml.etree.ElementTree as ET

import pytest

pytest_plugins = ["pytester"]
# Every run is a subprocess, as in CI: in-process runs share importlib caches with this session,
# and a suite run imports litellm, whose importlib_metadata finder outlives pytester's cleanup.

PYPROJECT = """
[tool.pytest.ini_options]
asyncio_default_fixture_loop_scope = "function"

[tool.llmops]
default_model = "fake/echo"
judge_model = "fake/echo"
cache = "off"
"""
ECHO = "---\ninputs:\n  text: {type: string}\n---\n{{ text }}\n"
SUITE = """\
name: qa
prompt: echo@1
evaluators:
  - contains: {name: has_answer}
gate:
  min_pass_rate: 0.5
cases:
  - id: capital-of-france
    inputs: {text: "It is Paris"}
    expected: Paris
  - id: capital-of-italy
    inputs: {text: "It is Rome"}
    expected: Rome
  - id: wrong-answer
    inputs: {text: "It is Berlin"}
    expected: Madrid
"""


@pytest.fixture
def proj(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyprojecttoml(PYPROJECT)
    (pytester.path / "prompts" / "echo").mkdir(parents=True)
    (pytester.path / "prompts" / "echo" / "v1.jinja").write_text(ECHO)
    (pytester.path / "evalsets").mkdir()
    (pytester.path / "evalsets" / "qa.yaml").write_text(SUITE)
    return pytester


def test_collects_readable_node_ids(proj: pytest.Pytester) -> None:
    result = proj.runpytest_subprocess("--collect-only", "-q", "evalsets")
    result.stdout.fnmatch_lines([
        "evalsets/qa.yaml::capital-of-france[[]fake/echo[]]",
        "evalsets/qa.yaml::capital-of-italy[[]fake/echo[]]",
        "evalsets/qa.yaml::wrong-answer[[]fake/echo[]]",
    ])


def test_items_pass_and_fail_with_explanations(proj: pytest.Pytester) -> None:
    result = proj.runpytest_subprocess("evalsets", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines([
        "*wrong-answer*",
        "*output: It is Berlin*",
        "*has_answer: fail 0.00 (threshold 1) — none of [[]'Madrid'[]] found*",
        "*llmops suite gates*",
        "PASSED *evalsets/qa.yaml*",
    ])


def test_session_fails_exactly_when_a_gate_fails(proj: pytest.Pytester) -> None:
    # One case fails within a passing gate (min_pass_rate 0.5): reported, the session passes.
    result = proj.runpytest_subprocess("evalsets", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1)
    assert result.ret == 0
    result.stdout.fnmatch_lines(["PASSED *evalsets/qa.yaml*",
                                 "*1 suite item(s) failed within passing gates*--llmops-strict*"])
    # --llmops-strict: any failing item fails the session.
    assert proj.runpytest_subprocess("evalsets", "-p", "no:cacheprovider", "--llmops-strict").ret == 1
    # A failing plain test still fails the session, whatever the gates say.
    proj.makepyfile(test_other="def test_broken():\n    assert False\n")
    assert proj.runpytest_subprocess("evalsets", "test_other.py", "-p", "no:cacheprovider").ret == 1


def test_k_selects_and_gate_notes_partial_run(proj: pytest.Pytester) -> None:
    result = proj.runpytest_subprocess("evalsets", "-k", "france")
    result.assert_outcomes(passed=1, deselected=2)
    result.stdout.fnmatch_lines(["*only part of the suite was selected*"])


def test_suite_gate_fails_the_session(proj: pytest.Pytester) -> None:
    suite = proj.path / "evalsets" / "qa.yaml"
    suite.write_text(SUITE.replace("min_pass_rate: 0.5", "min_pass_rate: 0.9"))
    result = proj.runpytest_subprocess("evalsets", "-k", "not wrong")
    result.assert_outcomes(passed=2, deselected=1)
    assert result.ret == 0  # the selection passes the gate...
    result = proj.runpytest_subprocess("evalsets")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["FAILED *evalsets/qa.yaml*", "*pass rate*"])


def test_baseline_regression_is_reported_by_the_gate(proj: pytest.Pytester) -> None:
    suite = proj.path / "evalsets" / "qa.yaml"
    cases = "\n".join(f"  - {{id: c{i}, inputs: {{text: 'answer {i}'}}, expected: 'answer {i}'}}" for i in range(30))
    suite.write_text("name: big\nprompt: echo@1\nevaluators: [contains]\ngate: {tolerance: 0.05}\ncases:\n" + cases)
    result = proj.runpytest_subprocess("evalsets", "--llmops-update-baseline")
    assert result.ret == 0
    assert (proj.path / "evalsets" / "baselines" / "big.json").exists()
    # v2 drops the answer for most cases: a real regression.
    (proj.path / "prompts" / "echo" / "v1.jinja").write_text(
        ECHO.replace("{{ text }}", "{{ text if text.endswith(('1', '2')) else 'no idea' }}"))
    result = proj.runpytest_subprocess("evalsets", "-p", "no:cacheprovider")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["FAILED evalsets/qa.yaml*", "*regress*"])


def test_junit_properties_and_step_summary(proj: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    summary = proj.path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    proj.runpytest_subprocess("evalsets", "--junitxml=junit.xml")
    tree = ET.parse(proj.path / "junit.xml")
    case = next(tc for tc in tree.iter("testcase") if "capital-of-france" in tc.get("name", ""))
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert props["llmops.model"] == "fake/echo" and props["llmops.prompt"] == "echo@1"
    assert props["llmops.score.has_answer"] == "1.0" and "llmops.cost_usd" in props
    assert "llmops.latency_s" in props
    text = summary.read_text()
    assert "### llmops: qa" in text and "| variant |" in text


def test_bad_suite_file_is_a_readable_collection_error(proj: pytest.Pytester) -> None:
    (proj.path / "evalsets" / "bad.yaml").write_text("prompt: echo@1\ncases:\n  - id: a\n    inptus: {}\n")
    result = proj.runpytest_subprocess("evalsets")
    result.stdout.fnmatch_lines(["*evalsets/bad.yaml:4: unknown key 'inptus'*", "*did you mean 'inputs'*"])
    assert result.ret == pytest.ExitCode.INTERRUPTED


def _runs(proj: pytest.Pytester) -> int:
    con = sqlite3.connect(proj.path / ".llmops" / "runs.sqlite")
    try:
        return int(con.execute("SELECT COUNT(*) FROM runs").fetchone()[0])
    finally:
        con.close()


def test_a_damaged_committed_cache_stops_the_suite_before_it_starts(proj: pytest.Pytester) -> None:
    """The plugin prepares its run as ``llmops run`` does, the cache's integrity check included."""
    # Record the cache as a developer would, then replay it as CI does: the good cache passes.
    assert proj.runpytest_subprocess("evalsets", "-p", "no:cacheprovider", "--llmops-cache", "read-write").ret == 0
    replay = proj.runpytest_subprocess("evalsets", "-p", "no:cacheprovider", "--llmops-cache", "read-only")
    replay.assert_outcomes(passed=2, failed=1)
    assert replay.ret == 0
    runs = _runs(proj)
    # A crafted cache: its table lacks the columns a lookup reads.
    con = sqlite3.connect(proj.path / ".llmops" / "cache.sqlite")
    con.executescript("DROP TABLE responses; CREATE TABLE responses (key TEXT PRIMARY KEY);")
    con.close()
    result = proj.runpytest_subprocess("evalsets", "-p", "no:cacheprovider", "--llmops-cache", "read-only")
    result.assert_outcomes(failed=3)
    assert result.ret == 1
    out = result.stdout.str()
    result.stdout.fnmatch_lines([
        "*wrong-answer*",
        "*the suite could not start:*cache.sqlite: the response cache's table 'responses' lacks column(s)*",
        "*hint: delete it (it only holds cached responses)*",
        "*llmops suite gates*",
        "evalsets/qa.yaml: the suite could not start:*lacks column(s) completion, created, model*",
    ])
    assert "Traceback" not in out and "_sqlite.py" not in out, out
    # Refused before anything ran: no run was started (a lookup per unit would have started one
    # and stored an error per unit).
    assert _runs(proj) == runs


def test_inactive_for_unrelated_projects(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain="def test_ok():\n    assert 1 + 1 == 2\n")
    pytester.makefile(".yaml", config="a: 1\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert "llmops suite gates" not in result.stdout.str()


def test_fixtures_and_async_tests(proj: pytest.Pytester) -> None:
    proj.makepyfile(test_usage="""
import pytest
import llmops

def test_sync(llmops):
    out = llmops.complete("echo@1", {"text": "The capital is Paris"})
    llmops.assert_scores(out, [{"contains": {"value": "Paris"}}, "not-contains"] if False else
                         [{"contains": {"value": "Paris"}}])
    with pytest.raises(AssertionError, match="none of .'Rome'. found"):
        llmops.assert_scores(out, [{"contains": {"value": "Rome"}}])

@pytest.mark.asyncio
async def test_async(llmops):
    out = await llmops.acomplete("echo@1", {"text": "async Paris"})
    assert out.text == "async Paris"
    again = llmops.complete("echo@1", {"text": "sync inside a running loop"})
    assert again.text == "sync inside a running loop"
    llmops.assert_scores(again, ["is-json"] if False else [{"length": {"max": 100}}])
""")
    result = proj.runpytest_subprocess("test_usage.py", "-p", "asyncio")
    result.assert_outcomes(passed=2)


def test_xdist_merges_worker_runs_into_one(proj: pytest.Pytester) -> None:
    cases = "\n".join(f"  - {{id: c{i}, inputs: {{text: 'v{i}'}}, expected: 'v{i}'}}" for i in range(12))
    suite = "name: qa\nprompt: echo@1\nevaluators: [contains]\ncases:\n" + cases
    (proj.path / "evalsets" / "qa.yaml").write_text(suite)
    result = proj.runpytest_subprocess("evalsets", "-n", "2", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=12)
    db = sqlite3.connect(proj.path / ".llmops" / "runs.sqlite")
    runs = db.execute("SELECT run_id, manifest FROM runs").fetchall()
    merged = [json.loads(m) for _, m in runs if json.loads(m)["merged_from"]]
    assert len(merged) == 1 and len(merged[0]["merged_from"]) == 2
    units = db.execute("SELECT unit FROM results WHERE run_id = ?", (merged[0]["run_id"],)).fetchall()
    assert len(units) == 12 and len(set(units)) == 12
    result.stdout.fnmatch_lines(["PASSED *evalsets/qa.yaml*12 units*"])
