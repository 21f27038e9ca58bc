"""Bad input: every broken file or flag is a clear error (file, line, key) and exit code 2.

A corpus of known-bad suites, prompts, configs and flags, then hypothesis fuzzing of the suite
and prompt loaders: whatever the bytes, the only exceptions are the documented ones.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_helpers import COUNTS

from llmops.cli import main
from llmops.errors import EvalsetError, LLMOpsError, PromptError, UserError
from llmops.evalsets.loader import MAX_FILE_BYTES, load_suite
from llmops.prompts import PromptRef, PromptRegistry
from llmops.prompts.template import PromptVersion

VALID = """\
name: qa
prompt: rag_answer@2
models: [fake/echo]
evaluators:
  - contains: {value: Paris}
gate: {min_pass_rate: 0.5}
cases:
  - id: c1
    inputs: {question: "Capital of France?"}
    expected: Paris
  - id: c2
    inputs: {question: "Capital of Japan?"}
"""

_BOMB = "\n".join(['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
                  + [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)])

# name: (suite text, words the message must contain, line or None, key or None)
SUITES: dict[str, tuple[str, str, int | None, str | None]] = {
    "malformed YAML": (VALID.replace("[fake/echo]", "[fake/echo"), "invalid YAML", 4, None),
    "tab indentation": (VALID.replace("  - id: c1", "\t- id: c1"), "invalid YAML", 8, None),
    "alias bomb": (_BOMB + "\nprompt: x\ncases: [{id: a, inputs: {v: *a8}}]\n", "too large", None, None),
    "recursive nesting": ("prompt: x\ncases: " + "[" * 3000 + "]" * 3000 + "\n", "too deep", None, None),
    "python tag": (VALID.replace("name: qa", "name: !!python/object/apply:os.system [ls]"), "constructor", 1,
                   None),
    "impossible date": (VALID.replace('"Capital of Japan?"', "2026-02-30"), "day is out of range", 12, None),
    "5000-digit number": (VALID.replace("gate: {min_pass_rate: 0.5}", "seed: 1" + "0" * 5000), "digits", 6,
                          None),
    "unhashable key": (VALID.replace("    expected: Paris", "    ? [a, b]\n    : x"), "unhashable", 10, None),
    "wrong type": (VALID.replace("models: [fake/echo]", "models: 3"), "valid list", 3, "models"),
    "wrong nested type": (VALID.replace("{min_pass_rate: 0.5}", "{min_pass_rate: lots}"), "valid number", 6,
                          "gate.min_pass_rate"),
    "out of range": (VALID.replace("{min_pass_rate: 0.5}", "{min_pass_rate: 7}"), "less than or equal", 6,
                     "gate.min_pass_rate"),
    "unknown key": (VALID.replace("    expected: Paris", "    expected_output: Paris"), "did you mean 'expected'",
                    10, "cases.0.expected_output"),
    "unknown top-level key": (VALID.replace("name: qa", "nmae: qa"), "did you mean 'name'", 1, "nmae"),
    "missing prompt": (VALID.replace("prompt: rag_answer@2\n", ""), "no prompt", 1, "prompt"),
    "duplicate ids": (VALID.replace("id: c2", "id: c1"), "duplicate case id 'c1'", 11, "cases.1.id"),
    "duplicate key": (VALID.replace("name: qa\n", "name: qa\nname: qb\n"), "duplicate key 'name'", 2, "name"),
    "empty suite": ("", "empty", None, None),
    "only a comment": ("# nothing here\n", "empty", None, None),
    "no cases": ("prompt: rag_answer@2\ncases: []\n", "no cases", 2, "cases"),
    "a list, not a mapping": ("- prompt: x\n", "mapping", 1, None),
    "bad case id": (VALID.replace("id: c2", "id: 'c 2'"), "pattern", 11, "cases.1.id"),
    "control character": (VALID.replace("name: qa", "name: q\x07a"), "invalid YAML", None, None),
}


def _write(folder: Path, text: str, name: str = "bad.yaml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("name", list(SUITES))
def test_bad_suite_names_file_line_and_key(project: Path, name: str, capsys: pytest.CaptureFixture[str]) -> None:
    text, words, line, key = SUITES[name]
    path = _write(project / "evalsets", text)
    with pytest.raises(EvalsetError) as info:
        load_suite(path)
    err = info.value
    assert words in str(err), str(err)
    assert err.file == str(path)
    assert err.line == line, (err.line, str(err))
    if key is not None:
        assert err.key == key
    # The CLI says the same thing and exits 2, without a traceback.
    assert main(["run", "evalsets/bad.yaml", "--no-progress"]) == 2
    out = capsys.readouterr().err
    assert "bad.yaml" in out and "Traceback" not in out


def test_invalid_utf8_names_the_line(project: Path) -> None:
    path = project / "evalsets" / "bad.yaml"
    path.write_bytes(VALID.encode().replace(b"Paris\n  - id: c2", b"Par\xe9s\n  - id: c2"))
    with pytest.raises(EvalsetError, match="UTF-8") as info:
        load_suite(path)
    assert info.value.line == 10


def test_huge_file_is_refused_without_reading_it(project: Path) -> None:
    path = project / "evalsets" / "huge.yaml"
    with path.open("wb") as fh:  # sparse: the size is real, nothing is written
        fh.truncate(MAX_FILE_BYTES + 1)
    with pytest.raises(EvalsetError, match="MiB limit") as info:
        load_suite(path)
    assert "cases_file" in (info.value.hint or "")


def test_directory_instead_of_a_suite(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "evalsets", "--no-progress"]) == 2
    assert "is a directory" in capsys.readouterr().err


BULK = {
    "jsonl not json": ("more.jsonl", '{"id": "j1"}\n{oops\n', "invalid JSON", 2),
    "jsonl not an object": ("more.jsonl", '{"id": "j1"}\n[1, 2]\n', "JSON object", 2),
    "jsonl unknown key": ("more.jsonl", '{"id": "j1", "inptus": {}}\n', "inptus", 1),
    "jsonl deep nesting": ("more.jsonl", '{"id": "j1", "inputs": {"v": ' + "[" * 100_000 + "]" * 100_000 + "}}\n",
                           "nested too deeply", 1),
    "csv extra cell": ("more.csv", "id,question\nk1,a,b\n", "more cells", 2),
    "wrong extension": ("more.txt", "x", ".jsonl or .csv", None),
    "missing file": ("absent.jsonl", None, "not found", None),
}


@pytest.mark.parametrize("name", list(BULK))
def test_bad_bulk_cases_file(project: Path, name: str) -> None:
    filename, body, words, line = BULK[name]
    if body is not None:
        (project / "evalsets" / filename).write_text(body, encoding="utf-8")
    suite = _write(project / "evalsets", VALID + f"cases_file: {filename}\n")
    with pytest.raises(EvalsetError) as info:
        load_suite(suite)
    assert words in str(info.value)
    assert (info.value.file or "").endswith(filename)
    assert info.value.line == line


# ---- prompts ---------------------------------------------------------------------------------
PROMPTS: dict[str, tuple[str | bytes, str, int | None]] = {
    "unknown front matter key": ("---\ndescripton: x\n---\nhi", "did you mean 'description'", 2),
    "alias bomb in front matter": ("---\nparams:\n  " + _BOMB.replace("\n", "\n  ") + "\n---\nhi", "too large", None),
    "deep front matter": ("---\nparams: " + "[" * 3000 + "]" * 3000 + "\n---\nhi", "too deep", None),
    "impossible date": ("---\ndescription: x\nparams: {d: 2026-02-30}\n---\nhi", "day is out of range", 3),
    "duplicate key": ("---\nmodel: a\nmodel: b\n---\nhi", "duplicate key 'model'", 3),
    "wrong input type": ("---\ninputs: {q: {type: text}}\n---\nhi", "inputs.q.type", 2),
    "unclosed front matter": ("---\ndescription: x\nhi", "never closed", 1),
    "template syntax": ("---\ndescription: x\n---\n{% for x in %}{% endfor %}", "syntax error", 4),
    "invalid UTF-8": (b"hello \xff", "UTF-8", None),
}


@pytest.mark.parametrize("name", list(PROMPTS))
def test_bad_prompt_file_names_file_and_line(project: Path, name: str, capsys: pytest.CaptureFixture[str]) -> None:
    body, words, line = PROMPTS[name]
    folder = project / "prompts" / "bad"
    folder.mkdir()
    path = folder / "v1.jinja"
    if isinstance(body, bytes):
        path.write_bytes(body)
    else:
        path.write_text(body, encoding="utf-8")
    with pytest.raises(PromptError) as info:
        PromptRegistry(project / "prompts").get("bad@1")
    assert words in str(info.value), str(info.value)
    assert info.value.file == str(path) and info.value.line == line
    assert main(["prompts", "show", "bad@1"]) == 2
    assert "v1.jinja" in capsys.readouterr().err


@pytest.mark.parametrize("text", ["production: [1\n", "production: v9x\n", "- 1\n", "[" * 3000, "prod uction: 1\n"])
def test_bad_labels_file(project: Path, text: str) -> None:
    (project / "prompts" / "summarize" / "labels.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(PromptError) as info:
        PromptRegistry(project / "prompts").get("summarize@production")
    assert (info.value.file or "").endswith("labels.yaml")


def test_suite_naming_a_missing_prompt_version_or_label(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for ref, words in (("rag_answer@9", "has no version 9"), ("rag_answer@prod", "has no label 'prod'"),
                       ("rag_anwser@1", "did you mean 'rag_answer'"), ("../rag_answer", "invalid prompt")):
        _write(project / "evalsets", VALID.replace("rag_answer@2", ref))
        assert main(["run", "evalsets/bad.yaml", "--no-progress"]) == 2
        assert words in capsys.readouterr().err


# ---- configuration and flags ------------------------------------------------------------------
def test_config_errors_exit_2(project: Path, monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    pyproject = project / "pyproject.toml"
    good = pyproject.read_text()
    pyproject.write_text(good + "concurency = 3\n")
    assert main(["models"]) == 2
    err = capsys.readouterr().err
    assert "pyproject.toml:9" in err and "did you mean 'concurrency'" in err
    pyproject.write_text(good.replace('cache = "read-write"', 'cache = "sometimes"'))
    assert main(["models"]) == 2
    assert "cache" in capsys.readouterr().err
    pyproject.write_text(good + "[broken\n")
    assert main(["models"]) == 2
    assert "invalid TOML" in capsys.readouterr().err
    pyproject.write_text(good)
    monkeypatch.setenv("LLMOPS_CONCURENCY", "3")
    assert main(["models"]) == 2
    assert "LLMOPS_CONCURRENCY" in capsys.readouterr().err


BAD_FLAGS: list[tuple[list[str], str]] = [
    (["run", "evalsets/ok.yaml", "--repeat", "0"], "repeat must be at least 1"),
    (["run", "evalsets/ok.yaml", "--repeat", "-2"], "repeat must be at least 1"),
    (["run", "evalsets/ok.yaml", "--concurrency", "0"], "concurrency"),
    (["run", "evalsets/ok.yaml", "--timeout", "-1"], "timeout"),
    (["run", "evalsets/ok.yaml", "--timeout", "nan"], "timeout"),
    (["run", "evalsets/ok.yaml", "--max-cost-usd", "-1"], "max_cost_usd"),
    (["run", "evalsets/ok.yaml", "--max-cost-usd", "nan"], "max_cost_usd"),
    (["run", "evalsets/ok.yaml", "--max-errors", "-1"], "max_errors"),
    (["run", "evalsets/ok.yaml", "--shard", "3/2"], "--shard"),
    (["run", "evalsets/ok.yaml", "--shard", "x"], "--shard"),
    (["run", "evalsets/ok.yaml", "--html", "no/such/dir/r.html"], "does not exist"),
    (["run", "evalsets/ok.yaml", "--markdown", "no/such/dir/r.md"], "does not exist"),
    (["run", "evalsets/ok.yaml", "--prompt", "../../etc/passwd"], "invalid prompt reference"),
    (["run", "--resume", "no-such-run"], "no run 'no-such-run'"),
    (["run"], "give a SUITE"),
    (["prompts", "render", "summarize@1", "--input", "novalue"], "key=value"),
    (["prompts", "render", "summarize@1", "--inputs-file", "missing.json"], "not found"),
    (["prompts", "render", "summarize@1", "--inputs-file", "evalsets"], "cannot read"),
    (["prompts", "render", "summarize@1", "--inputs-file", "latin1.json"], "UTF-8"),
    (["prompts", "render", "summarize@1", "--inputs-file", "list.json"], "JSON object"),
    (["prompts", "render", "[/bold]"], "invalid prompt reference '[/bold]'"),
    (["report", "nope"], "no run 'nope'"),
    (["report", "latest", "--html", "no/such/dir/r.html"], "no run"),
    (["run", "evalsets/ok.yaml", "--timeout", "inf"], "--timeout"),
    (["run", "evalsets/ok.yaml", "--repeat", "1000000", "--dry-run"], "repeat must be at most 1000"),
    (["run", "evalsets/ok.yaml", "--repeat", "1000000"], "repeat must be at most 1000"),
    (["compare", "evalsets/ok.yaml", "--quality", "nosuch", "--no-progress"], "unknown quality metric 'nosuch'"),
    (["run", "evalsets/minmean.yaml"], "minmean.yaml:8: gate.min_mean names evaluator 'contians'"),
]


@pytest.mark.parametrize(("argv", "words"), BAD_FLAGS, ids=[" ".join(a) for a, _ in BAD_FLAGS])
def test_bad_flags_exit_2_with_a_message(project: Path, argv: list[str], words: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    _write(project / "evalsets", VALID, "ok.yaml")
    _write(project / "evalsets", VALID.replace("gate: {min_pass_rate: 0.5}",
                                               "gate:\n  min_mean:\n    contians: 0.5"), "minmean.yaml")
    (project / "latin1.json").write_bytes(b'{"text": "caf\xe9"}')
    (project / "list.json").write_text("[1, 2]")
    COUNTS["bad inputs tried"] += 1
    code = main(argv)
    err = capsys.readouterr().err
    COUNTS["bad inputs: exit 2 with a location"] += code == 2 and words in err and "Traceback" not in err
    assert code == 2, err
    assert words in err, err
    assert "Traceback" not in err


@pytest.mark.parametrize("argv", [["run", "--repeat", "many"], ["run", "--cache", "sometimes"], ["--bogus"],
                                  ["nosuchcommand"], ["run", "--timeout"], ["compare", "x", "--alpha", "2"],
                                  ["compare", "x", "--alpha", "nan"], ["compare", "x", "--models", ""],
                                  ["traces", "list", "--limit", "-5"], ["runs", "list", "--limit", "0"]])
def test_argparse_errors_exit_2(project: Path, argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    COUNTS["bad inputs tried"] += 1
    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err
    # argparse names the flag (the location of a bad flag) in its message
    COUNTS["bad inputs: exit 2 with a location"] += info.value.code == 2 and ("argument" in err or "invalid" in err)
    assert info.value.code == 2


# ---- fuzzing: only documented errors --------------------------------------------------------
FUZZ = settings(max_examples=200, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
KEYS = ["name", "prompt", "prompts", "models", "cases", "id", "inputs", "expected", "evaluators", "gate",
        "repeat", "seed", "params", "kind", "threshold", "contexts", "assert", "tags", "metadata",
        "cases_file", "min_pass_rate", "max_errors", "description", "value", "nmae"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**30, 10**30), st.floats(allow_nan=True),
                    st.text(max_size=20), st.sampled_from(["rag_answer@2", "c1", "fake/echo", "contains",
                                                           "0.5", "", "@", "../x"]))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), inner,
                                                 max_size=5)), max_leaves=25)
suites = st.dictionaries(st.sampled_from(KEYS), values, max_size=8)


def _load_only_documented(text: str | bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.yaml"
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            load_suite(path)
        except EvalsetError as err:  # about the suite, or a cases_file it names
            assert (err.file or "").startswith(folder) and err.message
            assert err.line is None or err.line >= 1


@FUZZ
@given(st.text(max_size=400))
def test_fuzz_suite_loader_with_arbitrary_text(text: str) -> None:
    _load_only_documented(text)


@FUZZ
@given(st.binary(max_size=400))
def test_fuzz_suite_loader_with_arbitrary_bytes(data: bytes) -> None:
    _load_only_documented(data)


@FUZZ
@given(suites)
def test_fuzz_suite_loader_with_structured_yaml(data: dict[str, Any]) -> None:
    _load_only_documented(yaml.safe_dump(data, allow_unicode=True))


@FUZZ
@given(st.lists(st.tuples(st.integers(0, len(VALID)), st.integers(0, 3),
                          st.sampled_from(["", "-", ":", "[", "]", "{", "}", "&a", "*a", "!!", "\t", "\n", "'", '"',
                                           "  ", "x", "9", "@", "|", ">", "#"])), max_size=6))
def test_fuzz_suite_loader_with_mutations_of_a_valid_suite(edits: list[tuple[int, int, str]]) -> None:
    text = VALID
    for at, cut, insert in edits:
        at = min(at, len(text))
        text = text[:at] + insert + text[at + cut:]
    _load_only_documented(text)


VALID_PROMPT = """---
description: Answer
inputs:
  question: {type: string}
  n: {type: integer, default: 3}
params: {temperature: 0}
---
{% message "system" %}Be brief.{% endmessage %}
{% message "user" %}{{ question }} ({{ n }}){% endmessage %}
"""


def _prompt_only_documented(text: str, inputs: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "p" / "v1.jinja"
        path.parent.mkdir()
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            pv = PromptVersion.load("p", 1, path)
            messages = pv.render(inputs)
        except PromptError as err:
            assert err.message
            return
        assert all(m.role in ("system", "user", "assistant") for m in messages)


@FUZZ
@given(st.lists(st.tuples(st.integers(0, len(VALID_PROMPT)), st.integers(0, 3),
                          st.sampled_from(["", "{{", "}}", "{%", "%}", "---", "\n", ":", "[", "&a", "*a",
                                           "__class__", ".", "|", "(", ")", "'", "message", "endmessage",
                                           "x", "9", "**", "*"])), max_size=6),
       st.dictionaries(st.sampled_from(["question", "n", "other"]), values, max_size=3))
def test_fuzz_prompt_loader_and_renderer(edits: list[tuple[int, int, str]], inputs: dict[str, Any]) -> None:
    text = VALID_PROMPT
    for at, cut, insert in edits:
        at = min(at, len(text))
        text = text[:at] + insert + text[at + cut:]
    _prompt_only_documented(text, inputs)


@FUZZ
@given(st.text(max_size=300))
def test_fuzz_prompt_loader_with_arbitrary_text(text: str) -> None:
    _prompt_only_documented(text, {"question": "q"})


@FUZZ
@given(st.text(max_size=40))
def test_fuzz_prompt_references(ref: str) -> None:
    """Any string is a valid reference or a PromptError; a valid one never resolves outside the folder."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "prompts"
        (root / "qa").mkdir(parents=True)
        (root / "qa" / "v1.jinja").write_text("hi", encoding="utf-8")
        (Path(folder) / "secret").mkdir()
        (Path(folder) / "secret" / "v1.jinja").write_text("secret", encoding="utf-8")
        try:
            PromptRef.parse(ref)
            pv = PromptRegistry(root).get(ref)
        except PromptError:
            return
        assert pv.path.resolve().is_relative_to(root.resolve())


def test_documented_errors_are_user_errors() -> None:
    """The loaders' errors are the fixable kind: exit code 2."""
    for cls in (EvalsetError, PromptError):
        assert issubclass(cls, UserError) and issubclass(cls, LLMOpsError) and cls.exit_code == 2


BULK_FILES = {
    "bigint.jsonl": ('{"id": "a", "inputs": {"q": "x"}, "metadata": {"n": ' + "9" * 5000 + "}}\n", "bigint.jsonl:1:"),
    "huge.csv": ("id,q\nb1," + "x" * 200_000 + "\n", "huge.csv:"),
    "unclosed.csv": ('id,q\nb1,"hello\nb2,world\nb3,"x"\nb4,y\n', "unclosed.csv:"),
    "unclosed_end.csv": ('id,q\nb1,"hello\nb2,world\n', "unclosed_end.csv:"),
    "short.csv": ("id,q,expected\nb1,hello,hello\nb2,hi\n", "short.csv:3: row has fewer cells"),
}


@pytest.mark.parametrize("name", list(BULK_FILES))
def test_broken_bulk_files_exit_2_at_load_with_their_line(project: Path, name: str,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    text, where = BULK_FILES[name]
    (project / "evalsets" / name).write_text(text, encoding="utf-8")
    _write(project / "evalsets", VALID + f"cases_file: {name}\n", "bulk.yaml")
    COUNTS["bad inputs tried"] += 1
    code = main(["run", "evalsets/bulk.yaml", "--dry-run"])
    err = capsys.readouterr().err
    COUNTS["bad inputs: exit 2 with a location"] += code == 2 and where in err and "Traceback" not in err
    assert code == 2 and where in err and "Traceback" not in err, err


def test_valid_bulk_files_with_u2028_and_a_bom_load(project: Path) -> None:
    (project / "evalsets" / "sep.jsonl").write_text(
        '{"id": "j1", "inputs": {"question": "a\u2028b\u2029c\x85d"}, "expected": "x"}\n', encoding="utf-8")
    (project / "evalsets" / "bom.csv").write_text("\ufeffid,question,expected\nv1,hi,x\n", encoding="utf-8")
    _write(project / "evalsets", VALID + "cases_file: [sep.jsonl, bom.csv]\n", "bulk.yaml")
    loaded = load_suite(project / "evalsets" / "bulk.yaml")
    ids = [c.id for c in loaded.suite.cases]
    assert "j1" in ids and "v1" in ids
    assert next(c for c in loaded.suite.cases if c.id == "j1").inputs["question"] == "a\u2028b\u2029c\x85d"


@pytest.mark.parametrize("special", ["/dev/zero", "fifo"])
def test_devices_and_fifos_are_refused_not_read(project: Path, special: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    if special == "fifo":
        special = str(project / "evalsets" / "pipe.yaml")
        os.mkfifo(special)
    COUNTS["bad inputs tried"] += 1
    code = main(["run", special, "--dry-run"])  # before: MemoryError / blocked forever
    err = capsys.readouterr().err
    COUNTS["bad inputs: exit 2 with a location"] += code == 2 and "not a regular file" in err
    assert code == 2 and "not a regular file" in err, err


# ---- version numbers typed by people ----------------------------------------------------------
# str.isdigit() accepts '²', and int() refuses it (and refuses more than 4300 digits): each of these
# used to end in a ValueError traceback from the prompt registry.
@pytest.mark.parametrize(("argv", "labels", "words"), [
    (["prompts", "render", "summarize@²"], None, "invalid version or label '²'"),
    (["prompts", "render", "summarize@v²"], None, "invalid version or label 'v²'"),
    (["prompts", "render", "summarize@" + "9" * 5000], None, "invalid version or label"),
    (["prompts", "render", "summarize@production"], 'production: "²"\n', "labels.yaml"),
    (["run", "evalsets/ok.yaml", "--shard", "²/3"], None, "--shard expects I/N"),
], ids=["superscript version", "superscript v-version", "5000-digit version", "superscript label target",
        "superscript shard"])
def test_odd_digits_exit_2_with_a_location(project: Path, argv: list[str], labels: str | None, words: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    _write(project / "evalsets", VALID, "ok.yaml")
    if labels is not None:
        (project / "prompts" / "summarize" / "labels.yaml").write_text(labels, encoding="utf-8")
    COUNTS["bad inputs tried"] += 1
    code = main(argv)
    err = capsys.readouterr().err
    COUNTS["bad inputs: exit 2 with a location"] += code == 2 and words in err
    assert code == 2, err
    assert words in err, err
