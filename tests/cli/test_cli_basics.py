from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from llmops.cli import main
from llmops.llm import fake


def test_help_does_not_import_heavy_dependencies() -> None:
    code = ("import sys\nfrom llmops.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('litellm', 'ragas', 'langfuse', 'llama_cpp', 'openai') if m in sys.modules]\n"
            "print('HEAVY=' + ','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "HEAVY="


def test_every_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    for command in (["run"], ["runs", "list"], ["prompts", "render"], ["complete"], ["models"], ["schema"]):
        with pytest.raises(SystemExit) as info:
            main([*command, "--help"])
        assert info.value.code == 0
    assert "usage: llmops" in capsys.readouterr().out


def test_usage_errors_exit_2(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["run", "--repeat", "many"])
    assert info.value.code == 2
    assert main(["run"]) == 2
    assert "give a SUITE" in capsys.readouterr().err
    assert main(["run", "evalsets/nope.yaml"]) == 2
    assert "not found" in capsys.readouterr().err


def test_prompts_commands(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prompts", "list"]) == 0
    out = capsys.readouterr().out
    assert "rag_answer" in out and "production→v2" in out
    assert main(["prompts", "render", "rag_answer@1", "--input", "question=Why?", "--input", 'contexts=["c1"]',
                 "--json"]) == 0
    messages = json.loads(capsys.readouterr().out)
    assert messages[-1]["role"] == "user" and "Why?" in messages[-1]["content"] and "c1" in messages[-1]["content"]
    assert main(["prompts", "render", "rag_answer@1"]) == 2
    err = capsys.readouterr().err
    assert "missing required input 'question'" in err and "rag_answer@1" in err
    assert main(["prompts", "diff", "rag_answer@1", "rag_answer@2"]) == 0
    diff = capsys.readouterr().out
    assert diff.startswith("--- rag_answer@1") and "+description" in diff
    assert main(["prompts", "show", "rag_answer@production"]) == 0
    assert "rag_answer@2" in capsys.readouterr().out


def test_lock_then_check_catches_in_place_edit(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prompts", "check"]) == 0  # unlocked new versions are reported, not fatal
    assert "not locked yet: rag_answer@1" in capsys.readouterr().out
    assert main(["prompts", "lock"]) == 0
    assert main(["prompts", "check"]) == 0
    v1 = project / "prompts" / "summarize" / "v1.jinja"
    v1.write_text(v1.read_text() + "\nextra line\n")
    assert main(["prompts", "check"]) == 1
    assert "summarize@1" in capsys.readouterr().err


def test_complete_and_models(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake.script("fake/m", "Paris, of course.")
    assert main(["complete", "rag_answer@2", "-i", "question=Capital?", "--model", "fake/m"]) == 0
    out = capsys.readouterr().out
    assert "Paris, of course." in out and "fake/m" in out and "tokens" in out
    assert main(["complete", "rag_answer@2", "-i", "question=Capital?", "--model", "fake/m", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["cached"] is True
    assert main(["models", "--json"]) == 0
    names = [row["name"] for row in json.loads(capsys.readouterr().out)]
    assert "local/smollm2" in names and "fake/echo" in names


def test_schema_command(project: Path) -> None:
    assert main(["schema", "-o", "schema.json"]) == 0
    schema = json.loads((project / "schema.json").read_text())
    assert "cases" in schema["properties"]


def test_run_report_and_diff_exit_codes(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cases = "\n".join(f"  - {{id: c{i}, inputs: {{question: 'q{i}'}}, expected: 'ans{i}'}}" for i in range(24))
    suite = project / "evalsets" / "cli.yaml"
    suite.write_text("name: cli\nprompt: rag_answer@2\nmodels: [fake/cli]\nevaluators: [contains]\n"
                     "gate: {min_pass_rate: 0.5, tolerance: 0.05}\ncases:\n" + cases + "\n")
    fake.script("fake/cli", responder=lambda m, p: "ans" + m[-1]["content"].rsplit("q", 1)[1].split()[0])
    assert main(["run", "evalsets/cli.yaml", "--no-progress", "--update-baseline", "--cache", "off"]) == 0
    assert (project / "evalsets" / "baselines" / "cli.json").exists()
    good = capsys.readouterr().out
    assert "PASSED" in good
    # Now the model gets most answers wrong: the gate and the baseline comparison both fail (exit 1).
    fake.script("fake/cli", responder=lambda m, p: "no idea")
    assert main(["run", "evalsets/cli.yaml", "--no-progress", "--cache", "off", "--markdown", "s.md",
                 "--html", "r.html"]) == 1
    out = capsys.readouterr().out
    assert "FAILED" in out and "regress" in out
    assert "❌ failed" in (project / "s.md").read_text() and (project / "r.html").read_text().startswith("<!DOCTYPE")
    assert main(["report", "latest", "--gate"]) == 1
    capsys.readouterr()
    from llmops.runner.store import RunStore

    runs = RunStore(project / ".llmops" / "runs.sqlite").runs()
    assert main(["runs", "diff", runs[1].run_id, runs[0].run_id]) == 1
    diff = capsys.readouterr().out
    assert "REGRESSED" in diff and "regressed c0: 100% -> 0%" in diff
    assert main(["runs", "list"]) == 0 and "cli" in capsys.readouterr().out
    assert main(["runs", "show", "latest"]) == 0


def test_dry_run_and_replay_miss(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite = project / "evalsets" / "d.yaml"
    suite.write_text("prompt: rag_answer@2\nmodels: [fake/d]\ncases:\n  - {id: a, inputs: {question: q}}\n")
    assert main(["run", "evalsets/d.yaml", "--dry-run"]) == 0
    assert "1 provider calls" in capsys.readouterr().out
    assert fake.calls("fake/d") == []
    # A replay miss is found before any call: misconfiguration (exit 2), not a regression.
    assert main(["run", "evalsets/d.yaml", "--cache", "read-only", "--no-progress", "--max-errors", "0"]) == 2
    err = capsys.readouterr().err
    assert "1 request(s) are not in the response cache: case a [rag_answer@2 × fake/d]" in err
