"""Comparison reports that scale (8 variants), one column for one variant, ordered repeats, recorded inputs."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from llmops.compare import compare_run
from llmops.llm import fake
from llmops.reports.html import render_html
from llmops.runner.engine import run_suite
from tests.regression.regression_factories import make_run, unit

LONG = [f"openrouter/some-provider/model-family-{i}-instruct-large" for i in range(8)]


def _island(html: str) -> dict[str, Any]:
    found = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html, re.S)
    assert found
    return dict(json.loads(found.group(1)))


def eight_variant_run() -> Any:
    results = []
    for v, model in enumerate(LONG):
        for i in range(30):
            ok = (i * 7 + v * 3) % 10 < 6 + (v % 3)
            results.append(unit(f"case-{i:02d}", ok, model=model, latency_s=0.1 + v * 0.01, cost_usd=0.001 * v))
    return make_run(results)


def test_eight_variants_pair_table_has_one_row_per_other_variant() -> None:
    run = eight_variant_run()
    html = render_html(run)
    c = compare_run(run)
    assert f"Compared with the reference {LONG[0]}" in html
    table = html.split("<table class=pairs>")[1].split("</table>")[0]
    assert table.count("<tr>") == 1 + 7  # header + k-1 rows, not k(k-1)/2 × metrics
    assert "Holm over 7 comparisons" in html and c.tests_per_metric == 7


def test_eight_variant_charts_have_no_overlapping_labels(browser: Any, tmp_path: Path) -> None:
    """Measured in headless chromium: every text box of every chart is inside its SVG and overlaps
    no other text box (legend entries, ticks, titles). Screenshot: tmp_path/charts.png."""
    out = tmp_path / "report.html"
    out.write_text(render_html(eight_variant_run()), encoding="utf-8")
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    page.goto(out.as_uri())
    boxes = page.evaluate("""() => Array.from(document.querySelectorAll('#charts svg')).map(svg => {
        const r = svg.getBoundingClientRect();
        return {svg: [r.left, r.top, r.right, r.bottom],
                texts: Array.from(svg.querySelectorAll('text')).map(t => {
                    const b = t.getBoundingClientRect();
                    return [b.left, b.top, b.right, b.bottom, t.textContent]; })};
    })""")
    assert len(boxes) >= 3
    for chart in boxes:
        left, top, right, bottom = chart["svg"]
        texts = [t for t in chart["texts"] if t[2] > t[0]]
        for t in texts:
            assert left - 1 <= t[0] and t[2] <= right + 1 and top - 1 <= t[1] and t[3] <= bottom + 1, t
        labels = [t for t in texts if not t[4].isdigit()]  # numbered markers sit on their points
        for i, a in enumerate(labels):
            for b in labels[i + 1:]:
                overlap = min(a[2], b[2]) - max(a[0], b[0]) > 1 and min(a[3], b[3]) - max(a[1], b[1]) > 1
                assert not overlap, (a[4], b[4])
    # Every variant is named in each chart's legend (shortened names keep their number).
    legend = page.locator("#charts svg").first.locator("g.lgd")
    assert legend.count() == 8
    page.locator("#charts").screenshot(path=str(tmp_path / "charts.png"))
    page.locator("#summary").screenshot(path=str(tmp_path / "summary.png"))
    page.close()


def test_single_variant_report_shows_one_results_column(browser: Any, tmp_path: Path) -> None:
    run = make_run([unit(f"c{i}", i % 2 == 0) for i in range(3)])
    out = tmp_path / "one.html"
    out.write_text(render_html(run), encoding="utf-8")
    page = browser.new_page()
    page.goto(out.as_uri())
    row = page.locator('tr[data-case="c0"] td')
    assert row.count() == 2  # the case and its one result, not the same result twice
    assert page.locator("#head-b").is_hidden() and page.locator("#variant-b").is_hidden()
    assert page.locator("#head-a").inner_text() == "fake/x"
    page.close()


def test_repeats_are_shown_in_order() -> None:
    run = make_run([unit("c1", True, repeat=1), unit("c1", False, repeat=0), unit("c1", True, repeat=2)])
    column = _island(render_html(run))["columns"][0]
    assert [u["repeat"] for u in column["results"]["c1"]] == [0, 1, 2]


def test_report_shows_the_inputs_recorded_by_the_run_after_the_suite_moved(
        project: Path, settings: Any, client: Any) -> None:
    fake.script("fake/a", responder=lambda m, p: "yes")
    path = project / "evalsets" / "moved.yaml"
    path.write_text("name: moved\nprompts: [rag_answer@1]\nmodels: [fake/a]\nevaluators:\n"
                    "  - contains: {value: yes}\ncases:\n"
                    "  - {id: q1, inputs: {question: 'first question'}, expected: yes, contexts: [ctx one]}\n",
                    encoding="utf-8")
    run = run_suite(path, settings=settings, client=client, progress=False)
    path.rename(project / "elsewhere.yaml")
    case = _island(render_html(run))["cases"][0]
    assert case == {"id": "q1", "inputs": {"question": "first question"}, "expected": "yes",
                    "contexts": ["ctx one"]}
    assert run.manifest.case_data[0].inputs == {"question": "first question"}
