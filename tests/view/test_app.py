"""The HTTP layer of `llmops view`, in process: every page, the JSON API and the safety rules."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient
from view_helpers import XSS

from llmops.view.app import CSP, create_app

LOCAL = "http://127.0.0.1:8484"
WRITE = {"X-LLMOps-Review": "1", "Origin": LOCAL}


def client_for(project: Any, **kwargs: Any) -> TestClient:
    return TestClient(create_app(project, **kwargs), base_url=LOCAL)


@pytest.fixture
def http(view_project: Any) -> Iterator[TestClient]:
    with client_for(view_project) as c:
        yield c


def unit_of(view_project: Any, run_id: str, case_id: str, prompt: str = "rag_answer@1") -> str:
    return next(u.key for u in view_project.runs.load(run_id).results if u.case_id == case_id and u.prompt == prompt)


def pages(view_project: Any, two_runs: Any) -> list[str]:
    first, second = two_runs
    trace_id = view_project.traces.trace("latest").trace_id
    evil_trace = next(t.trace_id for t in __import__("llmops.view", fromlist=["x"]).list_traces(
        view_project, name="evil").traces)
    return ["/runs", "/runs?suite=viewsuite&outcome=failures", f"/runs/{first.run_id}",
            f"/runs/{first.run_id}?failures=1&q=sorry",
            f"/runs/{first.run_id}/cell?case=evil&prompt=rag_answer%401&model=fake%2Fa",
            f"/compare?a={first.run_id}&b={second.run_id}", f"/compare?a={first.run_id}", "/compare",
            "/traces", "/traces?name=evil&status=ok&prompt=rag_answer@1&model=fake/a&since=2000-01-01T00:00",
            f"/traces/{trace_id}", f"/traces/{evil_trace}", "/prompts", "/prompts/rag_answer?a=1&b=2", "/review"]


def test_every_page_renders_and_escapes_untrusted_text(http: TestClient, view_project: Any, two_runs: Any) -> None:
    from llmops.view import ReviewTarget, save_mark

    rid = two_runs[0].run_id
    save_mark(view_project, ReviewTarget(kind="run", run_id=rid, unit=unit_of(view_project, rid, "evil")), "fail",
              note=XSS)
    seen_payload = 0
    for url in pages(view_project, two_runs):
        r = http.get(url)
        assert r.status_code == 200, (url, r.text[:500])
        assert r.headers["content-security-policy"] == CSP and "unsafe-inline" not in CSP
        assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-frame-options"] == "DENY"
        html = r.text
        assert XSS not in html and "<script>window.__pwned" not in html and "<img src=x" not in html, url
        # Our own script tag is the only one, loaded from this origin; no inline style attribute.
        assert re.findall(r"<script[^>]*>", html) == ['<script src="/static/view.js" defer>'], url
        assert ' style="' not in html and "https://" not in html, url
        seen_payload += "&lt;img src=x onerror=&#34;window.__pwned=1&#34;&gt;" in html
    assert seen_payload >= 5  # the payload is shown, as text, on the matrix, cell, compare and trace pages


def test_json_api_returns_the_query_models(http: TestClient, two_runs: Any) -> None:
    first, second = two_runs
    runs = http.get("/api/runs").json()
    assert [r["run_id"] for r in runs["runs"]] == [second.run_id, first.run_id]
    matrix = http.get(f"/api/runs/{first.run_id}?failures=1").json()
    assert [row["case_id"] for row in matrix["rows"]] == ["no-3"]
    assert http.get(f"/api/runs/{first.run_id}/progress").json()["done"] == 8
    live = http.get(f"/api/live?runs={first.run_id}").json()
    assert live["newest"] > 0 and live["runs"][0]["status"] == "completed"
    side = http.get(f"/api/compare?a={first.run_id}&b={second.run_id}").json()
    assert side["changed"] == 1 and side["cases"][0]["case_id"] == "no-3"
    assert len(http.get("/api/traces?limit=3").json()["traces"]) == 3
    assert http.get("/api/prompts/rag_answer/diff").json()["b"] == 2
    assert http.get("/api/review").json()["labelled"] == 0
    bad = http.get("/api/runs?offset=x")
    assert bad.status_code == 404 and "whole number" in bad.json()["error"]


def test_ids_from_the_url_never_read_outside_the_stores(http: TestClient, project: Path) -> None:
    (project / "secret.txt").write_text("TOPSECRET", encoding="utf-8")
    for url in ["/runs/..%2F..%2Fsecret.txt", "/runs/%2e%2e/secret.txt", "/static/..%2F..%2Fqueries.py",
                "/static/../../pyproject.toml", "/static/view.py", "/prompts/..%2F..%2Fsecret.txt",
                "/prompts/..", "/traces/..%2Fsecret.txt", "/api/traces/%25", "/runs/%25/cell?case=x&prompt=y&model=z",
                "/api/prompts/..%2Fevalsets/diff", "/nowhere"]:
        r = http.get(url, follow_redirects=False)
        # ("/prompts/.." is normalised to "/" by the client: the home page's redirect to /runs.)
        assert r.status_code in (404, 405) or r.headers.get("location") == "/runs", (url, r.status_code)
        assert "TOPSECRET" not in r.text and "import " not in r.text, url
    assert http.get("/static/view.js").status_code == 200


def test_loopback_server_refuses_foreign_host_headers(http: TestClient) -> None:
    assert http.get("/runs", headers={"Host": "evil.example:8484"}).status_code == 403
    assert http.get("/runs", headers={"Host": "localhost:8484"}).status_code == 200
    assert http.get("/runs", headers={"Host": "[::1]:8484"}).status_code == 200


def test_token_rule(view_project: Any) -> None:
    with client_for(view_project, token="s3cret-token", loopback=False) as c:
        assert c.get("/runs", headers={"Host": "10.0.0.5:8484"}).status_code == 401
        assert c.get("/api/runs").status_code == 401
        assert c.get("/runs?token=wrong").status_code == 401
        assert c.get("/runs", headers={"Authorization": "Bearer wrong"}).status_code == 401
        first = c.get("/runs?token=s3cret-token&suite=viewsuite", follow_redirects=False)
        assert first.status_code == 303 and first.headers["location"] == "/runs?suite=viewsuite"
        cookie = first.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
        assert c.get("/runs").status_code == 200  # the cookie carries the token from now on
        c.cookies.clear()
        assert c.get("/runs").status_code == 401
        assert c.get("/api/runs", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200


def test_same_origin_rule_for_review_writes(http: TestClient, view_project: Any, two_runs: Any,
                                            project: Path) -> None:
    rid = two_runs[0].run_id
    body = {"kind": "run", "run_id": rid, "unit": unit_of(view_project, rid, "no-3"), "label": "fail"}
    labels = project / "review" / "labels.jsonl"
    refused = [
        http.post("/api/review", json=body),  # no header: a cross-site form or fetch without preflight
        http.post("/api/review", json=body, headers={**WRITE, "Origin": "http://evil.example"}),
        http.post("/api/review", json=body, headers={**WRITE, "Origin": "http://127.0.0.1:9999"}),
        http.post("/api/review", json=body, headers={**WRITE, "Sec-Fetch-Site": "cross-site"}),
        http.post("/api/review", content="label=fail", headers={**WRITE, "Content-Type": "text/plain"}),
        http.post("/runs", json=body, headers=WRITE),
    ]
    assert [r.status_code for r in refused] == [403, 403, 403, 403, 415, 405]
    assert not labels.exists()
    ok = http.post("/api/review", json=body, headers=WRITE)
    assert ok.status_code == 200 and ok.json()["labelled"] == 1
    assert json.loads(labels.read_text(encoding="utf-8"))["label"] == "fail"
    bad = http.post("/api/review", json={**body, "label": "maybe"}, headers=WRITE)
    assert bad.status_code == 404 and "label must be" in bad.json()["error"]
    bad_kind = http.post("/api/review", json={**body, "kind": "file"}, headers=WRITE)
    assert bad_kind.status_code == 404


def test_read_only_mode_writes_nothing(view_project: Any, two_runs: Any, project: Path) -> None:
    rid = two_runs[0].run_id
    with client_for(view_project, read_only=True) as c:
        r = c.post("/api/review", json={"kind": "run", "run_id": rid, "unit": unit_of(view_project, rid, "no-3"),
                                        "label": "pass"}, headers=WRITE)
        assert r.status_code == 403 and "read-only" in r.json()["error"]
        page = c.get(f"/runs/{rid}/cell?case=no-3&prompt=rag_answer%401&model=fake%2Fa").text
        assert "mark-btn" not in page and "p/f" not in page and "read-only" in page
    assert not (project / "review").exists()


def test_compare_page_computes_statistics_off_the_request_path(http: TestClient, two_runs: Any) -> None:
    first, second = two_runs
    query = f"?a={first.run_id}&b={second.run_id}"
    page = http.get("/compare" + query).text
    assert "Computing the paired statistics over 4 cases" in page and 'data-live="statistics"' in page
    for _ in range(600):
        r = http.get("/api/compare/statistics" + query)
        if r.status_code == 200:
            break
        assert r.status_code == 202 and r.json() == {"status": "computing"}
        __import__("time").sleep(0.05)
    assert r.status_code == 200 and r.json()["variants"][0]["label"] == "A"
    page = http.get("/compare" + query).text
    assert "Paired tests" in page and "Computing" not in page and "data-live" not in page


SECRET = "sk-proj-abcdefghijklmnop1234567890"


def test_secrets_in_outputs_are_redacted_on_every_page(project: Path, settings: Any, client: Any) -> None:
    from view_helpers import make_run

    from llmops.view import open_project

    run = make_run(project, settings, client, responder=lambda m, p: f"yes, the key is {SECRET}")
    p = open_project(settings=settings)
    try:
        with client_for(p) as c:
            cell = f"/runs/{run.run_id}/cell?case=ok-1&prompt=rag_answer%401&model=fake%2Fa"
            for url in [f"/runs/{run.run_id}", cell, f"/compare?a={run.run_id}", f"/api/runs/{run.run_id}"]:
                body = c.get(url).text
                assert SECRET not in body and "the key is" in body, url
    finally:
        p.close()


HOSTILE = [  # the payloads of tests/reliability/test_untrusted_output.py that a browser could run
    '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2"></textarea></details>',
    '"><svg onload="window.__pwned=3">',
    "javascript:window.__pwned=4",
    "{{ 7 * 7 }} {% include '/etc/passwd' %}",
    "safe\u202etxt.exe\u2066",
]


def test_xss_payloads_execute_nothing_in_a_browser(project: Path, settings: Any, client: Any, browser: Any) -> None:
    from test_cli_view import serving
    from view_helpers import make_run

    from llmops.view import ReviewTarget, list_traces, open_project, save_mark

    payload = " ".join(HOSTILE)
    first = make_run(project, settings, client, responder=lambda m, p: "yes " + payload)
    second = make_run(project, settings, client, responder=lambda m, p: payload)
    p = open_project(settings=settings)
    unit = next(u.key for u in p.runs.load(first.run_id).results)
    save_mark(p, ReviewTarget(kind="run", run_id=first.run_id, unit=unit), "fail", note=payload)
    trace_id = list_traces(p, limit=1).traces[0].trace_id
    p.close()
    with serving(project) as (url, _proc):
        page = browser.new_page()
        dialogs: list[str] = []
        errors: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.on("pageerror", lambda e: errors.append(str(e)))
        for path in [f"runs/{first.run_id}", f"runs/{first.run_id}/cell?case=evil&prompt=rag_answer%401&model=fake%2Fa",
                     f"compare?a={first.run_id}&b={second.run_id}", f"traces/{trace_id}", "traces", "runs", "review"]:
            page.goto(url + path)
            page.wait_for_load_state("load")
            assert page.evaluate("window.__pwned") is None, path
        assert dialogs == [] and errors == []
        page.goto(f"{url}runs/{first.run_id}/cell?case=ok-1&prompt=rag_answer%401&model=fake%2Fa")
        assert HOSTILE[0] in page.locator("pre.output").first.inner_text()  # shown as text


def test_every_asset_ships_in_the_wheel() -> None:
    import fnmatch
    import tomllib

    repo = Path(__file__).resolve().parents[2]
    globs = tomllib.loads((repo / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"][
        "package-data"]["llmops"]
    assets = [p.relative_to(repo / "llmops").as_posix() for folder in ("templates", "static")
              for p in (repo / "llmops" / "view" / folder).iterdir()]
    assert assets and all(any(fnmatch.fnmatch(a, g) for g in globs) for a in assets), (assets, globs)
    from llmops.view.app import STATIC

    assert set(STATIC) == {p.name for p in (repo / "llmops" / "view" / "static").iterdir()}
