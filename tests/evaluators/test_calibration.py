"""Calibration of an evaluator against human labels: the maths, the file, the store, the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from llmops.cli import main
from llmops.errors import UserError
from llmops.evaluators.calibration import (
    Confusion,
    LabelledSample,
    calibrate,
    calibration_path,
    cohen_kappa,
    kappa_label,
    load_calibration,
    load_labels,
    parse_label,
)
from llmops.llm import fake

FIXTURES = Path(__file__).parent / "data" / "hallucination_fixtures.jsonl"


def test_kappa_and_rates() -> None:
    # po = 0.7, pe = 0.5 -> kappa 0.4
    assert cohen_kappa(Confusion(tp=20, fp=5, tn=15, fn=10)) == pytest.approx(0.4)
    assert cohen_kappa(Confusion(tp=10, tn=10)) == pytest.approx(1.0)
    assert cohen_kappa(Confusion(fp=10, fn=10)) == pytest.approx(-1.0)
    assert cohen_kappa(Confusion(tp=5)) == pytest.approx(1.0)  # both raters constant and agreeing
    assert cohen_kappa(Confusion()) is None
    assert [kappa_label(k) for k in (None, -0.1, 0.1, 0.5, 0.7, 0.9)] == [
        "undefined", "poor", "slight", "moderate", "substantial", "almost perfect"]


@pytest.mark.parametrize(("raw", "value"), [("pass", True), ("FAIL", False), (1, True), (0, False),
                                            (True, True), ("good", True), ("no", False)])
def test_parse_label(raw: Any, value: bool) -> None:
    assert parse_label(raw) is value


def test_bad_labels_files_name_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "labels.jsonl"
    with pytest.raises(UserError, match="labels file not found"):
        load_labels(path)
    cases = {
        '{"output": "a", "label": "pass"}\n{"output": "b"}\n': r"labels\.jsonl:2: missing 'label'",
        '{"output": "a", "label": "pass"}\n\n{oops\n': r"labels\.jsonl:3: invalid JSON",
        '{"output": "a", "label": "maybe"}\n': r"labels\.jsonl:1: label: label must be pass/fail",
        '{"label": "pass"}\n': r"labels\.jsonl:1: output: Field required",
        '[1, 2]\n': r"labels\.jsonl:1: each line must be a JSON object",
        "\n": "has no rows",
    }
    for text, message in cases.items():
        path.write_text(text, encoding="utf-8")
        with pytest.raises(UserError, match=message):
            load_labels(path)


def test_calibrate_the_offline_hallucination_verifier(tmp_path: Path) -> None:
    report = calibrate("hallucination", FIXTURES, params={"embeddings": "lexical"}, root=tmp_path)
    assert report.n == 82 and report.measured + report.unmeasured == 82 and report.coverage >= 0.95
    assert report.positive == "fail"
    c = report.confusion
    assert c.tp + c.fn + c.fp + c.tn == report.measured
    assert report.accuracy is not None and report.accuracy >= 0.9
    assert report.balanced_accuracy is not None and report.balanced_accuracy >= 0.9
    assert report.fpr is not None and report.fpr <= 0.1
    assert report.kappa is not None and report.kappa >= 0.75
    assert report.accuracy_ci is not None and report.accuracy_ci[0] < report.accuracy < report.accuracy_ci[1]
    assert len(report.disagreements) == c.fp + c.fn + report.unmeasured
    print(f"\nhallucination (offline) vs labels: accuracy {report.accuracy:.3f}, TPR {report.tpr:.3f}, "
          f"FPR {report.fpr:.3f}, kappa {report.kappa:.3f}")
    path = calibration_path(tmp_path, "hallucination", "3")
    assert path.is_file() and path.name == "hallucination@v3.json"
    stored = load_calibration(tmp_path, "hallucination", "3", params={"embeddings": "lexical"},
                              threshold=report.threshold, exact=True)
    assert stored is not None and stored.kappa == report.kappa and stored.labels_sha256 == report.labels_sha256
    # Another configuration gets its own entry; the latest is found when the exact one is not asked for.
    calibrate("hallucination", FIXTURES, params={"embeddings": "lexical", "unsupported_weight": 0.5},
              root=tmp_path)
    assert len(json.loads(path.read_text(encoding="utf-8"))["entries"]) == 2
    assert load_calibration(tmp_path, "hallucination", "3", params={"x": 1}, exact=True) is None
    assert load_calibration(tmp_path, "hallucination", "3") is not None
    assert load_calibration(tmp_path, "hallucination", "9") is None


def test_unmeasured_rows_are_counted_not_scored() -> None:
    rows = [LabelledSample(output="Paris is in France.", label=True, contexts=["Paris is in France."]),
            LabelledSample(output="", label=False, contexts=["x"]),
            LabelledSample(output="Paris is in Spain.", label=False, contexts=["Paris is in France."])]
    report = calibrate("hallucination", rows, params={"embeddings": "lexical"}, save=False)
    assert report.n == 3 and report.measured == 2 and report.unmeasured == 1
    assert report.accuracy == 1.0 and report.unmeasured_reasons == {"empty output": 1}
    assert report.disagreements[0].predicted == "unmeasured"


# ---- the command -------------------------------------------------------------------------------------


def test_cli_prints_and_stores(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["-C", str(project), "calibrate", "hallucination", "--labels", str(FIXTURES),
                 "-p", "embeddings=lexical"])
    out = capsys.readouterr().out
    assert code == 0
    for word in ("accuracy", "balanced accuracy", "TPR", "FPR", "Cohen's kappa", "positive = fail",
                 "hallucination@v3.json"):
        assert word in out
    assert (project / ".llmops" / "calibration" / "hallucination@v3.json").is_file()


def test_cli_json_and_kappa_gate(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["-C", str(project), "calibrate", "hallucination", "--labels", str(FIXTURES), "-p",
                 "embeddings=lexical", "--json", "--no-save", "--min-kappa", "0.99"])
    report = json.loads(capsys.readouterr().out)
    assert code == 1 and report["kappa"] < 0.99 and report["evaluator"] == "hallucination"
    assert not (project / ".llmops" / "calibration").exists()


def test_cli_bad_labels_file_exit_2(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = project / "bad.jsonl"
    bad.write_text('{"output": "x"}\n', encoding="utf-8")
    code = main(["-C", str(project), "calibrate", "hallucination", "--labels", str(bad)])
    assert code == 2 and "bad.jsonl:1: missing 'label'" in capsys.readouterr().err


def test_cli_calibrates_a_judge(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    labels = project / "judge.jsonl"
    labels.write_text("\n".join(json.dumps(r) for r in [
        {"output": "Paris", "label": "pass", "inputs": {"q": "Capital of France?"}},
        {"output": "Lyon", "label": "fail", "inputs": {"q": "Capital of France?"}},
        {"output": "Rome", "label": "fail", "inputs": {"q": "Capital of Italy?"}}]) + "\n", encoding="utf-8")

    def verdict(messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
        text = messages[1]["content"]  # the judge prompt (a repair turn appends messages after it)
        if "Output to judge:\nRome" in text:
            return "I cannot decide."  # garbage twice: unmeasured, counted apart
        return json.dumps({"verdict": "pass" if "Output to judge:\nParis" in text else "fail"})

    fake.script("fake/judge", responder=verdict)
    code = main(["-C", str(project), "calibrate", "judge", "--labels", str(labels), "-p",
                 "criteria=names the right capital", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert report["judge_model"] == "fake/judge" and report["params"] == {"criteria": "names the right capital"}
    assert report["measured"] == 2 and report["unmeasured"] == 1 and report["accuracy"] == 1.0
