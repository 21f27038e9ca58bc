"""A self-contained HTML report: inline CSS, inline JS, server-side SVG charts, no network.

Model output and case text are untrusted. Server-side they pass through ``html.escape``; the
per-case view is built in the browser from a JSON island (``<`` ``>`` ``&`` escaped as unicode)
with ``textContent`` only, never ``innerHTML``. A Content-Security-Policy forbids any fetch.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from html import escape
from typing import TYPE_CHECKING, Any

from llmops.compare import PASS_RATE, Comparison, compare_run
from llmops.llm.agent import trajectory_line
from llmops.reports import charts
from llmops.reports.terminal import agent_cells, agent_columns, repeat_lines
from llmops.runner.results import RunResult, UnitResult

if TYPE_CHECKING:
    from llmops.regression.verdict import Verdict
    from llmops.reports.trust import EvaluatorTrust

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1d2330;color:#fff;padding:16px 24px}header h1{margin:0;font-size:20px}
header .meta{opacity:.8;font-size:12px;margin-top:4px}
main{padding:16px 24px;max-width:1400px}section{background:#fff;border-radius:8px;padding:16px;margin:12px 0;
box-shadow:0 1px 2px rgba(0,0,0,.08)}h2{font-size:16px;margin:0 0 10px}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:6px 8px;border-bottom:1px solid #e6e8ec;
vertical-align:top}th{background:#fafbfc;font-weight:600;font-size:12px}td.num{text-align:right}
.pass{color:#1a7f37;font-weight:600}.fail{color:#cf222e;font-weight:600}.error{color:#9a6700;font-weight:600}
.unmeasured{color:#6e7781;font-weight:600}.verdict-pass{border-left:6px solid #1a7f37}
.verdict-fail{border-left:6px solid #cf222e}.charts{display:flex;flex-wrap:wrap;gap:16px}
.chart{background:#fff}.ct{font-weight:600;font-size:13px}.ax{stroke:#57606a}.gr{stroke:#eaeef2}
.al{font-size:11px;fill:#57606a}.tk{font-size:10px;fill:#57606a}.pl{font-size:11px}
.pn{font-size:9px;fill:#fff;font-weight:700;pointer-events:none}
.front{fill:none;stroke:#111;stroke-dasharray:4 3}.mean{stroke:#111;stroke-width:2}
.legend{font-size:12px}.lg{margin-right:12px}.lg i{display:inline-block;width:10px;height:10px;margin-right:4px}
.muted{color:#6e7781}pre.out{white-space:pre-wrap;word-break:break-word;margin:0;font:12px/1.4 ui-monospace,monospace;
max-height:220px;overflow:auto;background:#f6f8fa;padding:6px;border-radius:4px}
.controls{display:flex;gap:12px;align-items:center;flex-wrap:wrap;margin-bottom:8px}
.controls button{border:1px solid #d0d7de;background:#f6f8fa;padding:4px 10px;border-radius:6px;cursor:pointer}
.controls button.active{background:#1d2330;color:#fff}.score{font-size:12px;margin-top:4px}
table.cases{table-layout:fixed}section h2+table,table+h2{margin-top:14px}
"""

SCRIPT = """
(function(){
  var data = JSON.parse(document.getElementById('report-data').textContent);
  var selA = document.getElementById('variant-a'), selB = document.getElementById('variant-b');
  var body = document.getElementById('cases-body'), count = document.getElementById('case-count');
  var filter = 'all';
  data.columns.forEach(function(col, i){
    [selA, selB].forEach(function(sel, j){
      var o = document.createElement('option'); o.value = String(i); o.textContent = col.label; sel.appendChild(o);
    });
  });
  selB.value = String(Math.min(1, data.columns.length - 1));
  // One variant: one results column (a second would repeat the first).
  var single = data.columns.length < 2;
  if (single){
    document.getElementById('pick-b').style.display = 'none';
    document.getElementById('head-b').style.display = 'none';
    document.getElementById('pick-a').style.display = 'none';
    document.getElementById('head-a').textContent = data.columns.length ? data.columns[0].label : 'output';
  }
  function el(tag, cls, text){ var e = document.createElement(tag); if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text); return e; }
  function cell(col, caseId){
    var td = el('td'); var units = (col.results[caseId] || []);
    if (!units.length){ td.appendChild(el('span', 'muted', 'not run')); return td; }
    units.forEach(function(u){
      var head = el('div'); head.appendChild(el('span', u.status, u.status.toUpperCase()));
      if (units.length > 1) head.appendChild(el('span', 'muted', ' repeat ' + u.repeat));
      td.appendChild(head);
      if (u.trajectory){
        var ol = el('ol', 'trajectory');
        u.trajectory.forEach(function(line){ ol.appendChild(el('li', '', line)); });
        var det = el('details');
        det.appendChild(el('summary', 'muted', 'trajectory: ' + u.trajectory.length + ' steps'));
        det.appendChild(ol); td.appendChild(det);
      }
      td.appendChild(el('pre', 'out', u.error ? ('error: ' + u.error) : u.output));
      u.scores.forEach(function(s){
        var d = el('div', 'score'); d.appendChild(el('span', s.status, s.name + ' ' + s.status));
        d.appendChild(el('span', '', (s.value === null ? '' : ' ' + Number(s.value).toFixed(2)) + ' — ' + s.reason));
        td.appendChild(d);
      });
    });
    return td;
  }
  function render(){
    while (body.firstChild) body.removeChild(body.firstChild);
    var a = data.columns[Number(selA.value)], b = data.columns[Number(selB.value)], shown = 0;
    data.cases.forEach(function(c){
      var f = data.flags[c.id] || {};
      if (filter !== 'all' && !f[filter]) return;
      var tr = el('tr'); tr.setAttribute('data-case', c.id);
      var first = el('td'); first.appendChild(el('div', '', c.id));
      first.appendChild(c.inputs === null ? el('div', 'muted', 'inputs not recorded by this run')
                                           : el('pre', 'out', JSON.stringify(c.inputs, null, 1)));
      if (c.expected !== null) first.appendChild(el('div', 'muted', 'expected: ' + c.expected));
      (c.contexts || []).forEach(function(ctx){ first.appendChild(el('div', 'muted', 'context: ' + ctx)); });
      tr.appendChild(first); tr.appendChild(cell(a, c.id)); if (!single) tr.appendChild(cell(b, c.id));
      body.appendChild(tr); shown += 1;
    });
    count.textContent = shown + ' of ' + data.cases.length + ' cases';
  }
  Array.prototype.forEach.call(document.querySelectorAll('[data-filter]'), function(btn){
    btn.addEventListener('click', function(){
      filter = btn.getAttribute('data-filter');
      Array.prototype.forEach.call(document.querySelectorAll('[data-filter]'), function(x){
        x.classList.toggle('active', x === btn); });
      render();
    });
  });
  selA.addEventListener('change', render); selB.addEventListener('change', render);
  render();
})();
"""


def script_hash(script: str) -> str:
    """The CSP source (``'sha256-...'``) that allows exactly this inline script."""
    digest = hashlib.sha256(script.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode('ascii')}'"


# No network at all: inline style, the one inline script of the report (by its hash: an injected
# <script> that got past escaping would not run, nor would an inline event handler), images only
# from data: URLs.
CSP = (f"default-src 'none'; style-src 'unsafe-inline'; script-src {script_hash(SCRIPT)}; img-src data:; "
       "base-uri 'none'; form-action 'none'")


def _fmt_value(x: float, pct: bool) -> str:
    return f"{x * 100:.0f}%" if pct else f"{x:.2f}"


def _json_island(data: Any) -> str:
    text = json.dumps(data, ensure_ascii=False)
    # Nothing inside may close the <script> element or open a comment.
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def _unit_view(u: UnitResult) -> dict[str, Any]:
    view: dict[str, Any] = {
        "repeat": u.repeat, "status": u.status, "output": u.output or "", "error": u.error,
        "scores": [{"name": s.name, "status": s.status, "value": s.value, "reason": s.reason} for s in u.scores]}
    if u.trajectory:  # an agent loop: each model call and tool result, in order (model output is untrusted text)
        view["trajectory"] = [trajectory_line(step) for step in u.trajectory]
    return view


def _columns(run: RunResult, comparison: Comparison, prefix: str = "") -> list[dict[str, Any]]:
    columns = []
    for v in comparison.variants:
        results: dict[str, list[dict[str, Any]]] = {}
        for u in run.results:
            if u.prompt == v.prompt and u.model == v.model and u.status != "skipped":
                results.setdefault(u.case_id, []).append(_unit_view(u))
        for units in results.values():
            units.sort(key=lambda view: int(view["repeat"]))  # results arrive in completion order
        columns.append({"label": prefix + v.label, "results": results})
    return columns


def _flags(run: RunResult, verdict: Verdict | None) -> dict[str, dict[str, bool]]:
    flags: dict[str, dict[str, bool]] = {}
    outcomes: dict[tuple[str, str, str], set[str]] = {}
    for u in run.results:
        f = flags.setdefault(u.case_id, {"failed": False, "regressed": False, "flaky": False})
        if u.status in ("fail", "error"):
            f["failed"] = True
        if u.status in ("pass", "fail"):
            outcomes.setdefault((u.case_id, u.prompt, u.model), set()).add(u.status)
    for (case_id, _, _), seen in outcomes.items():
        if len(seen) > 1:
            flags[case_id]["flaky"] = True
    if verdict is not None:
        for variant in verdict.variants:
            for change in variant.regressed_cases:
                flags.setdefault(change.case_id, {"failed": False, "regressed": False, "flaky": False})
                flags[change.case_id]["regressed"] = True
            for case_id in variant.flaky_cases:
                if case_id in flags:
                    flags[case_id]["flaky"] = True
    return flags


def _interval(iv: Any, pct: bool) -> str:
    if iv.value is None:
        return "—"
    if iv.low is None or iv.high is None:
        return _fmt_value(iv.value, pct)
    return (f"{_fmt_value(iv.value, pct)} <span class=muted>[{_fmt_value(iv.low, pct)}–"
            f"{_fmt_value(iv.high, pct)}]</span>")


def _summary_table(c: Comparison) -> str:
    metrics = sorted({m for v in c.variants for m in v.means})
    extra = agent_columns(c.variants)
    head = "".join(f"<th>{escape(m)} (mean, 95% CI)</th>" for m in metrics)
    rows = []
    for v in c.variants:
        means = "".join(f"<td class=num>{_interval(v.means[m], False) if m in v.means else '—'}</td>"
                        for m in metrics)
        p50 = "—" if v.latency_p50_s is None else f"{v.latency_p50_s * 1000:.0f}"
        p95 = "—" if v.latency_p95_s is None else f"{v.latency_p95_s * 1000:.0f}"
        agent = "".join(f"<td class=num>{escape(x)}</td>" for x in agent_cells(v, extra))
        rows.append(f"<tr><td>{escape(v.label)}</td><td class=num>{v.cases}</td>"
                    f"<td class=num>{_interval(v.pass_rate, True)}</td>{means}<td class=num>{v.unmeasured}</td>"
                    f"<td class=num>{v.errors}</td><td class=num>{p50}</td><td class=num>{p95}</td>"
                    f"<td class=num>{v.tokens_per_case:.0f}</td>"
                    f"<td class=num>{v.cost_per_1000_cases_usd + v.judge_cost_per_1000_cases_usd:.4f}</td>{agent}</tr>")
    return ("<table><thead><tr><th>variant</th><th>cases</th><th>pass rate (95% CI)</th>" + head +
            "<th>unmeasured</th><th>errors</th><th>p50 ms</th><th>p95 ms</th><th>tokens/case</th>"
            "<th>$ per 1k cases</th>" + "".join(f"<th>{escape(x)}</th>" for x in extra)
            + "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


def _pairwise_table(c: Comparison) -> str:
    """The paired tests as a table that stays short with many variants.

    Reference mode: one row per other variant, one column per metric (k−1 rows for k variants).
    All pairs: one row per pair and metric, folded under a summary line.
    """
    if not c.pairwise:
        return ""

    def cell(p: Any) -> str:
        pct = p.metric == PASS_RATE

        def fmt(x: float) -> str:
            return f"{x * 100:+.1f} pts" if pct else f"{x:+.3f}"

        mark = "<span class=fail>significant</span>" if p.significant else "<span class=muted>n.s.</span>"
        return (f"<td class=num>{fmt(p.difference)} <span class=muted>[{fmt(p.low)}, {fmt(p.high)}]</span><br>"
                f"p<sub>adj</sub>={p.p_adjusted:.3g} {mark}</td>")

    metrics = list(dict.fromkeys(p.metric for p in c.pairwise))
    note = f"<p class=muted>Correction: {escape(c.correction)}. Differences are row minus reference, 95% CI.</p>"
    if c.mode == "reference" and c.reference is not None:
        head = "".join(f"<th>{escape(m)}</th>" for m in metrics)
        rows = []
        for v in c.variants:
            if v.label == c.reference:
                continue
            by_metric = {p.metric: p for p in c.pairwise if p.b == v.label}
            n = max((p.n for p in by_metric.values()), default=0)
            cells = "".join(cell(by_metric[m]) if m in by_metric else "<td class=muted>—</td>" for m in metrics)
            rows.append(f"<tr><td>{escape(v.label)}</td><td class=num>{n}</td>{cells}</tr>")
        return (f"<h2>Compared with the reference {escape(c.reference)}</h2>{note}<table class=pairs><thead><tr>"
                f"<th>variant</th><th>cases</th>{head}</tr></thead><tbody>" + "".join(rows) + "</tbody></table>")
    rows = []
    for p in c.pairwise:
        rows.append(f"<tr><td>{escape(p.b)} vs {escape(p.a)}</td><td>{escape(p.metric)}</td>"
                    f"<td class=num>{p.n}</td>{cell(p)}</tr>")
    significant = sum(p.significant for p in c.pairwise)
    note = note.replace("row minus reference", "first minus second")
    return (f"<h2>Paired comparisons (all pairs)</h2>{note}<details><summary>{len(c.pairwise)} tests, "
            f"{significant} significant</summary><table class=pairs><thead><tr><th>pair</th><th>metric</th>"
            "<th>cases</th><th>difference [95% CI], adjusted p</th></tr></thead><tbody>"
            + "".join(rows) + "</tbody></table></details>")


def _charts(run: RunResult, c: Comparison) -> str:
    def quality(v: Any) -> float:
        iv = v.pass_rate if c.quality_metric == PASS_RATE else v.means.get(c.quality_metric)
        return float(iv.value) if iv is not None and iv.value is not None else float("nan")

    cost = {v.label: (quality(v), v.cost_per_1000_cases_usd + v.judge_cost_per_1000_cases_usd) for v in c.variants}
    latency = {v.label: (quality(v), (v.latency_p50_s or 0.0) * 1000) for v in c.variants}
    out = [charts.scatter(cost, c.pareto_cost, title=f"{c.quality_metric} vs cost", xlabel="$ per 1,000 cases",
                          ylabel=c.quality_metric, xfmt="{:.3g}"),
           charts.scatter(latency, c.pareto_latency, title=f"{c.quality_metric} vs latency",
                          xlabel="p50 latency (ms)", ylabel=c.quality_metric, xfmt="{:.0f}")]
    by_prompt: dict[str, dict[str, float | None]] = {}
    for v in c.variants:
        by_prompt.setdefault(v.prompt, {})[v.model] = v.pass_rate.value
    out.append(charts.bars(by_prompt, title="pass rate by prompt version"))
    evaluators = sorted({s.name for u in run.results for s in u.scores})
    for name in evaluators:
        dist = {v.label: [s.value for u in run.results if u.prompt == v.prompt and u.model == v.model
                          for s in u.scores if s.name == name and s.measured and s.value is not None]
                for v in c.variants}
        out.append(charts.strips(dist, title=f"{name}: score distribution", ylabel="score"))
    return "".join(out)


def _repeats(run: RunResult, verdict: Verdict | None) -> str:
    lines = repeat_lines(run, verdict)
    if not lines:
        return ""
    return '<ul class="repeats">' + "".join(f"<li>{escape(line)}</li>" for line in lines) + "</ul>"


def _verdict_section(verdict: Verdict | None) -> str:
    if verdict is None:
        return ""
    cls = "verdict-pass" if verdict.passed else "verdict-fail"
    word = f"<span class={'pass' if verdict.passed else 'fail'}>{escape(verdict.word)}</span>"
    items = "".join(f"<li>{escape(r)}</li>" for r in [*verdict.reasons, *verdict.notes])
    return f'<section class="{cls}" id="verdict"><h2>Gate: {word}</h2><ul>{items}</ul></section>'


def _trust_section(trust: list[EvaluatorTrust] | None) -> str:
    if not trust:
        return ""
    rows = []
    for t in trust:
        if not t.calibrated:
            rows.append(f"<tr><td>{escape(t.name)}</td><td>{escape(t.kind)} v{escape(t.version)}</td>"
                        "<td colspan=5 class=muted>not calibrated (llmops calibrate KIND --labels FILE.jsonl)"
                        "</td></tr>")
            continue

        def pct(x: float | None) -> str:
            return "—" if x is None else f"{x * 100:.1f}%"

        kappa = "—" if t.kappa is None else f"{t.kappa:.2f} ({escape(t.agreement or '')})"
        rows.append(f"<tr><td>{escape(t.name)}</td><td>{escape(t.kind)} v{escape(t.version)}</td>"
                    f"<td class=num>{t.n}</td>"
                    f"<td class=num>{pct(t.accuracy)}</td><td class=num>{kappa}</td><td class=num>{pct(t.tpr)}</td>"
                    f"<td class=num>{pct(t.fpr)}</td></tr>")
    return ("<section id=\"trust\"><h2>Evaluator calibration</h2><table><thead><tr><th>evaluator</th><th>kind</th>"
            "<th>labels</th><th>accuracy</th><th>Cohen's kappa</th><th>fails caught</th><th>false alarms</th>"
            "</tr></thead><tbody>" + "".join(rows) + "</tbody></table></section>")


def render_html(run: RunResult, *, comparison: Comparison | None = None, verdict: Verdict | None = None,
                baseline_run: RunResult | None = None, title: str | None = None,
                trust: list[EvaluatorTrust] | None = None) -> str:
    """Render a run (optionally with its gate verdict and a baseline run) as one HTML document.

    Args:
        run: The run.
        comparison: Its comparison (computed when omitted).
        verdict: The gate verdict, for the verdict box and the "regressed" filter.
        baseline_run: Another run whose outputs can be shown side by side with this one.
        title: Page title.
        trust: Calibration of the run's evaluators (see :func:`llmops.reports.trust.evaluator_trust`).
    """
    c = comparison or compare_run(run)
    m = run.manifest
    columns = _columns(run, c)
    if baseline_run is not None:
        columns += _columns(baseline_run, compare_run(baseline_run), prefix=f"baseline {baseline_run.run_id}: ")
    case_ids: list[str] = []
    for u in run.results:
        if u.case_id not in case_ids:
            case_ids.append(u.case_id)
    # What the run recorded, never the suite file as it is now (it may have changed or moved).
    recorded = {c.id: c for c in m.case_data}
    cases = []
    for cid in case_ids:
        case = recorded.get(cid)
        cases.append({"id": cid, "inputs": case.inputs if case else None,
                      "expected": case.expected if case else None,
                      "contexts": list(case.contexts) if case else []})
    data = {"cases": cases, "columns": columns, "flags": _flags(run, verdict)}
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(m.started_at)) if m.started_at else ""
    meta = (f"run {escape(m.run_id)} · {escape(started)} · commit {escape((m.git_commit or 'n/a')[:10])} · "
            f"{len(run.results)} units · cost ${m.cost_usd + m.judge_cost_usd:.4f} · "
            f"cache hits {0 if m.cache_hit_rate is None else m.cache_hit_rate:.0%}")
    heading = escape(title or f"llmops report — {m.suite}")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{heading}</title><style>{CSS}</style></head>
<body><header><h1>{heading}</h1><div class="meta">{meta}</div></header><main>
{_verdict_section(verdict)}
<section id="summary"><h2>Summary</h2><p>{escape(c.verdict)}</p>{_repeats(run, verdict)}
{_summary_table(c)}{_pairwise_table(c)}</section>
{_trust_section(trust)}
<section id="charts"><h2>Charts</h2><div class="charts">{_charts(run, c)}</div></section>
<section id="cases"><h2>Cases</h2>
<div class="controls"><label id="pick-a">left <select id="variant-a"></select></label>
<label id="pick-b">right <select id="variant-b"></select></label>
<button data-filter="all" class="active">all</button><button data-filter="failed">failed</button>
<button data-filter="regressed">regressed</button><button data-filter="flaky">flaky</button>
<span id="case-count" class="muted"></span></div>
<table class="cases"><thead><tr><th style="width:22%">case</th><th id="head-a">left</th>
<th id="head-b">right</th></tr></thead>
<tbody id="cases-body"></tbody></table>
</section></main>
<script type="application/json" id="report-data">{_json_island(data)}</script>
<script>{SCRIPT}</script>
</body></html>
"""
