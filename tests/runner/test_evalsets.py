from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmops.errors import EvalsetError
from llmops.evalsets.loader import load_suite, suite_json_schema

GOOD = """\
name: qa
prompt: rag_answer@2
models: [fake/echo]
evaluators:
  - contains: {value: Paris}
  - kind: regex
    name: one_line
    pattern: "^[^\\n]*$"
gate: {min_pass_rate: 0.5}
cases:
  - id: c1
    inputs: {question: "Capital of France?"}
    expected: Paris
  - id: c2
    inputs: {question: "Capital of Japan?"}
    assert:
      - {kind: contains, value: Tokyo}
"""


def write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_valid_suite(tmp_path: Path) -> None:
    loaded = load_suite(write(tmp_path, GOOD))
    assert loaded.name == "qa" and [c.id for c in loaded.cases] == ["c1", "c2"]
    assert loaded.suite.prompts == ["rag_answer@2"]
    specs = loaded.suite.evaluators
    assert specs[0].kind == "contains" and specs[0].params == {"value": "Paris"}
    assert specs[1].display_name == "one_line" and specs[1].params == {"pattern": "^[^\n]*$"}
    assert loaded.cases[1].assertions[0].kind == "contains"
    assert loaded.case_lines["c2"][1] == 14
    assert len(loaded.dataset_hash) == 64


def test_misspelled_key_names_line_and_suggests(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("    expected: Paris", "    expectd: Paris"))
    with pytest.raises(EvalsetError) as info:
        load_suite(path)
    err = info.value
    assert err.file == str(path) and err.line == 13 and err.key == "cases.0.expectd"
    assert "expected" in (err.hint or "")


def test_wrong_type_names_key(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("models: [fake/echo]", "models: 3"))
    with pytest.raises(EvalsetError, match="models") as info:
        load_suite(path)
    assert info.value.line == 3


def test_duplicate_case_ids(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("id: c2", "id: c1"))
    with pytest.raises(EvalsetError, match="duplicate case id 'c1'") as info:
        load_suite(path)
    assert info.value.line == 14


def test_duplicate_yaml_keys(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("name: qa\n", "name: qa\nname: qb\n"))
    with pytest.raises(EvalsetError, match="duplicate key 'name'") as info:
        load_suite(path)
    assert info.value.line == 2


@pytest.mark.parametrize(("text", "message"), [
    ("", "empty"),
    ("- a\n- b\n", "mapping"),
    ("prompt: x\ncases: []\n", "no cases"),
    ("cases:\n  - id: a\n", "no prompt"),
    ("prompt: x\ncases: [\n", "invalid YAML"),
])
def test_bad_files(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(EvalsetError, match=message):
        load_suite(write(tmp_path, text))


def test_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i-1}"] * 10) + "]")
    lines.append("prompt: x\ncases: [{id: a, inputs: {v: *a8}}]")
    with pytest.raises(EvalsetError, match="too large or too deep"):
        load_suite(write(tmp_path, "\n".join(lines)))


def test_invalid_utf8(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_bytes(b"prompt: x\ncases:\n  - id: \xff\n")
    with pytest.raises(EvalsetError, match="UTF-8") as info:
        load_suite(path)
    assert info.value.line == 3


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(EvalsetError, match="not found"):
        load_suite(tmp_path / "nope.yaml")


def test_bulk_cases_jsonl_and_csv(tmp_path: Path) -> None:
    (tmp_path / "more.jsonl").write_text(
        json.dumps({"id": "j1", "inputs": {"question": "q"}, "expected": "a"}) + "\n\n"
        + json.dumps({"id": "j2", "inputs": {"question": "q2"}}) + "\n", encoding="utf-8")
    (tmp_path / "more.csv").write_text("id,question,expected,contexts\nk1,hello,hi,a||b\n", encoding="utf-8")
    loaded = load_suite(write(tmp_path, GOOD + "cases_file: [more.jsonl, more.csv]\n"))
    assert [c.id for c in loaded.cases] == ["c1", "c2", "j1", "j2", "k1"]
    k1 = loaded.cases[-1]
    assert k1.inputs == {"question": "hello"} and k1.expected == "hi" and k1.contexts == ["a", "b"]
    assert loaded.case_lines["j2"] == (str((tmp_path / "more.jsonl").resolve()), 3)


def test_bulk_case_errors_name_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "more.jsonl").write_text('{"id": "j1"}\n{"id": "j2", "inptus": {}}\n', encoding="utf-8")
    with pytest.raises(EvalsetError, match="inptus") as info:
        load_suite(write(tmp_path, GOOD + "cases_file: more.jsonl\n"))
    assert info.value.line == 2 and info.value.file.endswith("more.jsonl")
    (tmp_path / "more.jsonl").write_text('{"id": "c1"}\n', encoding="utf-8")
    with pytest.raises(EvalsetError, match="duplicate case id 'c1'"):
        load_suite(write(tmp_path, GOOD + "cases_file: more.jsonl\n"))


def test_json_schema_covers_suite_keys() -> None:
    schema = suite_json_schema()
    assert {"prompt", "prompts", "models", "cases", "evaluators", "gate"} <= set(schema["properties"])
    case = schema["$defs"]["Case"]["properties"]
    assert "assert" in case and "id" in case


def test_example_suites_validate() -> None:
    root = Path(__file__).resolve().parents[2] / "evalsets"
    suites = sorted(root.glob("*.yaml"))
    assert suites
    for path in suites:
        assert load_suite(path).cases


def test_yaml_scalars_stay_text(tmp_path: Path) -> None:
    text = "prompt: x\ncases:\n  - {id: 1, expected: yes}\n  - {id: b, expected: 330}\n  - {id: c, expected: no}\n"
    cases = load_suite(write(tmp_path, text)).cases
    assert [(c.id, c.expected) for c in cases] == [("1", "yes"), ("b", "330"), ("c", "no")]
