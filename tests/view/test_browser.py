"""End to end in Debian's headless chromium: init, a run on the embedded model, `llmops view`, review keys."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from test_cli_view import llmops, serving

FAILING_CASE = """\
  - id: never-right
    inputs: {question: "What colour is the sky?", context: "The sky is blue."}
    expected: "zebra-quantum-7"
"""


@pytest.mark.local_model
def test_view_end_to_end_in_a_browser(tmp_path: Path, browser: Any) -> None:
    root = tmp_path / "proj"
    out = llmops(tmp_path, "init", str(root))
    assert out.returncode == 0, out.stderr
    suite = root / "evalsets" / "example.yaml"
    suite.write_text(suite.read_text(encoding="utf-8") + FAILING_CASE, encoding="utf-8")
    for _ in range(2):  # a baseline and a candidate (the second replays from the cache)
        ran = llmops(root, "run", "evalsets/example.yaml", "--no-progress")
        assert ran.returncode in (0, 1), ran.stdout + ran.stderr
    with serving(root) as (url, _proc):
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        errors: list[str] = []
        requests: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requests.append(r.url))
        page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        # Runs -> the older run -> its failing cell -> that unit's trace.
        page.goto(url + "runs")
        rows = page.locator("table.runs tbody tr")
        assert rows.count() == 2
        older, newer = rows.nth(1).get_attribute("data-run"), rows.nth(0).get_attribute("data-run")
        rows.nth(1).locator("a").first.click()
        page.wait_for_url(f"**/runs/{older}")
        assert "never-right" in page.locator("table.matrix").inner_text()
        page.locator("td.cell.s-fail a.status").first.click()
        page.wait_for_url("**/cell?**")
        assert "zebra-quantum-7" in page.locator("main").inner_text()  # the expected answer is shown
        assert page.locator(".scores td.s-fail").count() >= 1
        page.locator("a", has_text="trace").last.click()
        page.wait_for_url("**/traces/**")
        assert page.locator("svg.wf rect").count() >= 2 and "generation" in page.locator("main").inner_text()
        # Two runs side by side, picked in the form.
        page.goto(url + "compare")
        page.fill("input[name=a]", older or "")
        page.fill("input[name=b]", newer or "")
        page.click("form.filters button")
        page.wait_for_url("**/compare?**")
        page.wait_for_selector("text=Paired tests")  # the statistics arrive when computed
        assert "Paired tests" in page.locator("main").inner_text() and page.locator("table.side tbody tr").count() == 4
        # Three marks with the keyboard on the older run's matrix: j p, j p, j f.
        page.goto(f"{url}runs/{older}")
        marks = page.locator("td.cell [data-field=mark]")
        for i, key in enumerate("ppf"):
            page.keyboard.press("j")
            page.keyboard.press(key)
            expected = "reviewed: pass" if key == "p" else "reviewed: fail"
            page.wait_for_function(
                "([i, t]) => document.querySelectorAll('td.cell [data-field=mark]')[i].textContent === t",
                arg=[i, expected])
        assert [marks.nth(i).inner_text() for i in range(3)] == ["reviewed: pass", "reviewed: pass", "reviewed: fail"]
        page.goto(url + "review")
        assert "3 outputs labelled" in page.locator("main").inner_text()
        page.goto(f"{url}runs/{older}")
        shot = page.screenshot(full_page=True)
        assert errors == [], errors  # no CSP violation, no script error
        assert all(u.startswith(url.rstrip("/")) for u in requests), requests  # nothing from another origin
    from PIL import Image

    image = Image.open(io.BytesIO(shot)).convert("L")
    assert len(image.getcolors(maxcolors=1_000_000) or []) > 20, "the run page looks blank"
    (tmp_path / "run-page.png").write_bytes(shot)
    labels = [json.loads(line) for line in (root / "review" / "labels.jsonl").read_text(encoding="utf-8").splitlines()]
    assert sorted(row["label"] for row in labels) == ["fail", "pass", "pass"]
    calibrated = llmops(root, "calibrate", "contains", "--json", "--no-save")
    assert calibrated.returncode == 0, calibrated.stdout + calibrated.stderr
    assert json.loads(calibrated.stdout)["n"] == 3


def test_a_run_in_progress_appears_and_updates_live(project: Path, two_runs: Any, browser: Any) -> None:
    from test_cli_view import serving

    from llmops.runner.results import Manifest, UnitResult
    from llmops.runner.store import RunPlan, RunStore

    with serving(project) as (url, _proc):
        page = browser.new_page()
        page.goto(url + "runs")
        assert page.locator("table.runs tbody tr").count() == 2
        store = RunStore(project / ".llmops" / "runs.sqlite")  # another process's run, as `llmops run` writes it
        store.create_run(Manifest(run_id="live-run", suite="viewsuite", suite_path="x.yaml", llmops_version="0",
                                  python_version="3", units=3),
                         RunPlan(suite_path="x.yaml", models=["fake/a"], prompts=["p@1"], repeat=1, seed=0))
        page.wait_for_selector('tr[data-run="live-run"]', timeout=15_000)  # the list reloads by itself
        progress = page.locator('tr[data-run="live-run"] [data-field=progress]')
        assert progress.inner_text() == "0/3"
        store.add_result("live-run", UnitResult(case_id="c1", prompt="p@1", model="fake/a", status="fail"))
        # (A function, not an expression string: the viewer's CSP forbids eval, Playwright's too.)
        page.wait_for_function("() => document.querySelector('tr[data-run=\"live-run\"] [data-field=progress]')"
                               ".textContent === '1/3'", timeout=15_000)
        store.close()
