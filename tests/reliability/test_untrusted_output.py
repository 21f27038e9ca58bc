"""Model output is untrusted: stored verbatim, escaped wherever it is shown, never run or used as a path.

The HTML report's XSS test in a real browser lives in tests/reports/test_html_report.py; here
hostile answers go through a whole run and every place that shows them: the run store, the
terminal report, Markdown, HTML, JSON, the judge's prompt, the pytest plugin's failure text
and its JUnit XML.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from reliability_helpers import bounded_client, echo_prompt

from llmops.config import Settings
from llmops.llm import fake
from llmops.reports.html import render_html
from llmops.reports.markdown import render_markdown
from llmops.reports.terminal import print_run
from llmops.runner.engine import run_suite
from llmops.runner.store import RunStore

HOSTILE = {
    "xss": '<script>window.__pwned=1</script><img src=x onerror="alert(1)"></textarea></details>',
    "markdown": "| a | b |\n</details>\n[click](javascript:alert(1)) ![pixel](https://evil.example/p.png)",
    "rich markup": "[bold green]PASSED[/] [/] [link=https://evil.example]x[/link]",
    "ansi": "\x1b[2K\x1b[1A\x1b[32mPASSED\x1b[0m \x1b]0;owned\x07 \x1b[2J",
    "bidi": "safe\u202etxt.exe\u2066",
    "template": "{{ 7 * 7 }} {% include '/etc/passwd' %} {{ cycler.__init__.__globals__ }}",
    "path": "../../../../tmp/llmops-pwned.txt",
    "absolute path": "/tmp/llmops-pwned-abs.txt",
    "code": "__import__('os').system('touch /tmp/llmops-pwned-code')",
    "xml breakers": "]]> <![CDATA[ \x00 \x0b \ufffe &amp; &#0;",
    "deep json": "[" * 50_000,
}
JUDGE_SEEN: list[str] = []


def _answer(messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
    return HOSTILE[str(messages[-1]["content"]).strip()]


def _judge(messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
    JUDGE_SEEN.append(str(messages[-1]["content"]))
    return '{"reason": "looks fine", "verdict": "pass"}'


def _suite(project: Path) -> Path:
    echo_prompt(project)
    cases = "".join(f"  - {{id: h{i}, inputs: {{q: '{name}'}}, expected: 'never-there'}}\n"
                    for i, name in enumerate(HOSTILE))
    path = project / "evalsets" / "hostile.yaml"
    path.write_text("name: hostile\nprompt: echo@1\nmodels: [fake/hostile]\n"
                    "evaluators: [contains, is-json, {kind: judge, criteria: 'is helpful'}]\ncases:\n" + cases,
                    encoding="utf-8")
    return path


@pytest.fixture
def run(project: Path, settings: Settings) -> Any:
    JUDGE_SEEN.clear()
    fake.script("fake/hostile", responder=_answer)
    fake.script("fake/judge", responder=_judge)
    return run_suite(_suite(project), settings=settings, client=bounded_client(settings, cache_mode="off"),
                     progress=False)


def test_outputs_are_stored_verbatim_and_never_executed(project: Path, run: Any) -> None:
    stored = {r.case_id: r.output for r in RunStore(project / ".llmops" / "runs.sqlite").results(run.manifest.run_id)}
    assert stored == {f"h{i}": text for i, text in enumerate(HOSTILE.values())}
    assert {r.status for r in run.results} == {"fail"}  # measured like any text: no crash, no error
    deep = next(r for r in run.results if r.case_id == f"h{list(HOSTILE).index('deep json')}")
    assert deep.score("is-json").status == "fail" and "nested too deeply" in deep.score("is-json").reason  # type: ignore[union-attr]
    for leftover in ("/tmp/llmops-pwned.txt", "/tmp/llmops-pwned-abs.txt", "/tmp/llmops-pwned-code"):
        assert not os.path.exists(leftover)
    assert not any(p.name.startswith("llmops-pwned") for p in project.rglob("*"))
    # The judge saw the template text as text: nothing rendered it ({{ 7 * 7 }} is not 49).
    template_prompt = next(t for t in JUDGE_SEEN if "{{ 7 * 7 }}" in t)
    assert "49" not in template_prompt and "{% include '/etc/passwd' %}" in template_prompt


def test_terminal_report_shows_control_characters_escaped(run: Any) -> None:
    from rich.console import Console

    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=200, highlight=False, soft_wrap=True)
    print_run(console, run)
    shown = buffer.getvalue()
    for raw in ("\x1b[2K", "\x1b[1A", "\x1b]0;", "\x1b[2J", "\u202e", "\u2066", "\x00"):
        assert raw not in shown, repr(raw)
    assert "\\x1b[2K" in shown and "\\u202e" in shown
    assert "[bold green]PASSED[/]" in shown  # printed as the text it is


def test_markdown_cannot_break_the_table_or_link_out(run: Any) -> None:
    md = render_markdown(run)
    details = md.split("<details>", 1)[1]
    rows = [line for line in details.splitlines() if line.startswith("| h")]
    assert len(rows) == len(HOSTILE)  # one row per unit: no injected row or closed <details>
    assert details.count("</details>") == 1
    assert "<script" not in md and "<img" not in md
    assert not re.search(r"(?<!\\)\]\(", md)  # every ] is escaped: no [text](url) link or image forms
    assert "\x1b" not in md and "\u202e" not in md


def test_html_and_json_reports_escape_everything(run: Any) -> None:
    html = render_html(run)
    assert "<script>window.__pwned" not in html and "<img src=x" not in html
    assert html.count("<script") == 2  # the JSON island and the report's own script
    assert "</textarea></details>" not in html
    island = html.split('id="report-data">', 1)[1].split("</script>", 1)[0]
    assert "<" not in island  # every < inside the island is escaped: nothing can close it
    # The run as JSON (what `llmops run --json` prints) round-trips the outputs exactly.
    data = json.loads(json.dumps(run.model_dump(mode="json")))
    assert {r["output"] for r in data["results"]} == set(HOSTILE.values())


def test_pytest_plugin_failure_text_and_junit_xml(project: Path) -> None:
    """The plugin's failure explanation escapes control characters; the JUnit XML stays valid."""
    _suite(project)
    (project / "conftest.py").write_text(
        "from llmops.llm import fake\n"
        f"HOSTILE = {HOSTILE!r}\n"
        "fake.script('fake/hostile', responder=lambda m, p: HOSTILE[m[-1]['content'].strip()])\n"
        "fake.script('fake/judge', responder=lambda m, p: '{\"reason\": \"ok\", \"verdict\": \"pass\"}')\n",
        encoding="utf-8")
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    done = subprocess.run([sys.executable, "-m", "pytest", "evalsets", "-p", "no:cacheprovider", "-q",
                           "--junitxml=junit.xml", "--llmops-cache", "off", "--llmops-no-gate"],
                          cwd=project, env=env, capture_output=True, timeout=300, check=False)
    out = done.stdout.decode("utf-8", "replace")
    assert done.returncode == 1, out[-3000:] + done.stderr.decode()[-2000:]
    assert "\x1b[2K" not in out and "\\x1b[2K" in out and "\u202e" not in out
    tree = ET.parse(project / "junit.xml")  # parses: nothing in the output broke the XML
    cases = tree.getroot().findall(".//testcase")
    assert len(cases) == len(HOSTILE) and all(c.find("failure") is not None for c in cases)
    assert not list(project.glob("**/llmops-pwned*"))


def test_cli_tables_print_bracketed_user_text_literally(project, capsys) -> None:  # type: ignore[no-untyped-def]
    from llmops.cli import main

    folder = project / "prompts" / "weird"
    folder.mkdir()
    (folder / "v1.jinja").write_text("---\ndescription: 'uses [/bold] and [red]tags[/red]'\n---\nhi\n")
    assert main(["prompts", "list"]) == 0
    out = capsys.readouterr().out
    assert "[/bold]" in out and "[red]tags[/red]" in out  # printed as text (a table cell may wrap it)


def test_evaluator_names_cannot_reshape_markdown_reports(project: Path) -> None:
    """User strings in table headers (evaluator names) are escaped like cells: no new rows, links or HTML."""
    from reliability_helpers import write_suite

    from llmops.cli import main

    evil = "a|b\\n\\n</details>![x](http://tracker.invalid/x.png) [c](http://e.invalid) <b>"
    write_suite(project, "evil", 2, "fake/echo",
                evaluators=f'[{{kind: regex, pattern: "q", name: "{evil}"}}]')
    assert main(["run", "evalsets/evil.yaml", "--no-progress", "--markdown", "evil.md"]) == 0
    md = (project / "evil.md").read_text(encoding="utf-8")
    header = next(line for line in md.splitlines() if line.startswith("| variant"))
    assert header.count(" | ") == header.replace("\\|", "").count(" | ")  # every | in the name is escaped
    assert len(re.findall(r"(?<!\\)\|", header)) == 6, header  # 5 columns: variant, pass rate, mean, p50, cost
    assert "</details>" not in md and "<b>" not in md and "![x](" not in md
    assert not re.search(r"(?<!\\)\]\(", md)
