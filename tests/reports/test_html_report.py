from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from llmops.compare import compare_run
from llmops.llm import fake
from llmops.reports.html import render_html
from llmops.reports.markdown import render_markdown
from llmops.runner.engine import run_suite

XSS = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>"\'</textarea>'
SUITE = """\
name: xss
prompts: [rag_answer@1, rag_answer@2]
models: [fake/a, fake/b]
evaluators:
  - contains: {name: has_answer}
cases:
  - {id: ok-1, inputs: {question: "q1"}, expected: yes}
  - {id: ok-2, inputs: {question: "q2"}, expected: yes}
  - {id: evil, inputs: {question: "PAYLOAD"}, expected: yes, contexts: ["PAYLOAD"]}
  - {id: no-3, inputs: {question: "q3"}, expected: yes}
"""


def answers(messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
    text = messages[-1]["content"]
    if "<script>" in text:
        return "yes " + XSS
    return "no" if "q3" in text else "yes indeed"


def make_run(project: Path, settings: Any, client: Any, repeat: int = 1) -> Any:
    fake.script("fake/a", responder=answers)
    flip = iter(range(10_000))
    fake.script("fake/b", responder=lambda m, p: "yes" if next(flip) % 2 else answers(m, p))
    path = project / "evalsets" / "xss.yaml"
    payload = XSS.replace('"', '\\"')
    path.write_text(SUITE.replace("PAYLOAD", payload), encoding="utf-8")
    return run_suite(path, settings=settings, client=client, progress=False, repeat=repeat)


def test_html_escapes_untrusted_text_statically(project: Path, settings: Any, client: Any) -> None:
    run = make_run(project, settings, client)
    html = render_html(run)
    assert XSS not in html
    assert "<script>window.__pwned" not in html and "onerror=" not in html.replace("onerror=\\", "")
    assert html.count("<script") == 2  # the JSON island and our own script, nothing else
    assert "https://" not in html.split("Content-Security-Policy")[1].split(">", 1)[1]  # no CDN


def test_html_report_in_a_real_browser(project: Path, settings: Any, client: Any, browser: Any,
                                       tmp_path: Path) -> None:
    run = make_run(project, settings, client, repeat=2)
    out = tmp_path / "report.html"
    out.write_text(render_html(run), encoding="utf-8")
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    errors: list[str] = []
    dialogs: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(out.as_uri())
    assert errors == [] and dialogs == []
    assert page.evaluate("window.__pwned") is None
    assert all(url.startswith(("file:", "data:")) for url in requests), requests
    # The payload is shown as text.
    evil_row = page.locator('tr[data-case="evil"]')
    assert XSS in evil_row.inner_text()
    # Charts render: four SVGs at least, and the screenshot of the chart area is not blank.
    assert page.locator("#charts svg").count() >= 4
    from PIL import Image

    shot = Image.open(io.BytesIO(page.locator("#charts").screenshot())).convert("L")
    colors = shot.getcolors(maxcolors=1_000_000) or []
    assert len(colors) > 20, "chart area looks blank"
    dark = sum(n for n, value in colors if value < 200)
    assert dark > 2000
    # Filters: all 4 cases, 'failed' only shows cases with a failing unit, 'flaky' those whose repeats differ.
    assert page.locator("#cases-body tr").count() == 4
    page.click('[data-filter="failed"]')
    failed_ids = sorted(page.locator("#cases-body tr").evaluate_all("rows => rows.map(r => r.dataset.case)"))
    assert failed_ids == ["no-3"]
    page.click('[data-filter="flaky"]')
    flaky = sorted(page.locator("#cases-body tr").evaluate_all("rows => rows.map(r => r.dataset.case)"))
    assert flaky == ["no-3"]
    page.click('[data-filter="all"]')
    # Side by side: choosing another right-hand variant changes the right column.
    page.select_option("#variant-b", index=3)
    right = page.locator('tr[data-case="ok-1"] td').nth(2).inner_text()
    assert "PASS" in right or "FAIL" in right
    assert page.locator("#case-count").inner_text() == "4 of 4 cases"
    page.close()


def test_markdown_escapes_and_summarizes(project: Path, settings: Any, client: Any) -> None:
    run = make_run(project, settings, client)
    md = render_markdown(run)
    assert "<script>" not in md and "<img" not in md
    assert "| variant |" in md and "rag_answer@2 × fake/a" in md
    assert "failing, errored or unmeasured units" in md


def test_comparison_pareto_and_verdict(project: Path, settings: Any, client: Any) -> None:
    run = make_run(project, settings, client)
    c = compare_run(run)
    assert len(c.variants) == 4 and c.quality_metric == "pass rate"
    assert {p.metric for p in c.pairwise} >= {"pass rate", "has_answer"}
    # Reference mode (the default): each of the other 3 variants against the first.
    assert c.mode == "reference" and c.reference == c.variants[0].label
    assert len([p for p in c.pairwise if p.metric == "pass rate"]) == 3
    assert len([p for p in compare_run(run, mode="all-pairs").pairwise if p.metric == "pass rate"]) == 6
    assert c.pareto_cost and set(c.pareto_cost) <= {v.label for v in c.variants}
    assert "no significant difference" in c.verdict or "significantly" in c.verdict
    assert "With 4 paired cases, no difference in pass rate can be detected reliably" in c.verdict


def test_reports_show_evaluator_calibration(project: Path, settings: Any, client: Any) -> None:
    from llmops.evaluators.calibration import LabelledSample, calibrate, save_calibration
    from llmops.reports.trust import evaluator_trust

    run = make_run(project, settings, client)
    labels = [LabelledSample(output="yes it is", label=True, expected="yes"),
              LabelledSample(output="no", label=False, expected="yes"),
              LabelledSample(output="yes", label=False, expected="yes")]
    report = calibrate("contains", labels, save=False)
    save_calibration(report, settings.root)
    trust = evaluator_trust(run.manifest, settings.root)
    assert [t.name for t in trust] == ["has_answer"] and trust[0].calibrated
    assert trust[0].n == 3 and abs((trust[0].accuracy or 0) - 2 / 3) < 1e-9
    md = render_markdown(run, trust=trust)
    assert "Evaluator calibration against human labels: has_answer accuracy 67%" in md
    assert "Cohen&#x27;s kappa" in render_html(run, trust=trust) or "Cohen's kappa" in render_html(run, trust=trust)


def test_csp_lets_only_the_reports_own_script_run(project: Path, settings: Any, client: Any, browser: Any,
                                                  tmp_path: Path) -> None:
    """An injection that got past escaping (simulated by editing the HTML) cannot run a script."""
    from llmops.reports.html import CSP

    assert "unsafe-inline" not in CSP.split("script-src", 1)[1].split(";", 1)[0]
    run = make_run(project, settings, client, repeat=1)
    html = render_html(run).replace(
        "<main>", "<main><script>window.__pwned = 1</script><img src=x onerror=\"window.__pwned = 2\">"
                  "<div id=clicky onclick=\"window.__pwned = 3\">x</div>", 1)
    out = tmp_path / "injected.html"
    out.write_text(html, encoding="utf-8")
    page = browser.new_page()
    page.goto(out.as_uri())
    page.click("#clicky")
    assert page.evaluate("window.__pwned") is None
    assert page.locator("#cases-body tr").count() == 4  # the report's own (hashed) script ran
    page.close()
