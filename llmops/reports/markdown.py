"""Markdown reports that fit a pull-request comment or a CI step summary.

Model output is untrusted: table cells are escaped (pipes, angle brackets, newlines) and long
text is cut, so a model cannot inject HTML or break the table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmops.compare import PASS_RATE, Comparison, compare_run
from llmops.llm.agent import trajectory_line
from llmops.reports.terminal import agent_cells, agent_columns, printable, repeat_lines
from llmops.runner.results import RunResult

if TYPE_CHECKING:
    from llmops.regression.verdict import Verdict
    from llmops.reports.trust import EvaluatorTrust


def cell(text: object, limit: int = 120) -> str:
    """Escape a value for a Markdown table cell."""
    flat = printable(" ".join(str(text).split()))
    if len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    for char, repl in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("|", "\\|"), ("`", "\\`"),
                       ("[", "\\["), ("]", "\\]")):
        flat = flat.replace(char, repl)
    return flat


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.0f}%"


def render_markdown(run: RunResult, *, comparison: Comparison | None = None, verdict: Verdict | None = None,
                    max_failures: int = 15, trust: list[EvaluatorTrust] | None = None) -> str:
    """Summary, verdict, comparison and the first failing cases of a run, as Markdown."""
    c = comparison or compare_run(run)
    m = run.manifest
    lines: list[str] = []
    status = ""
    if verdict is not None:
        status = " — ✅ passed" if verdict.passed else f" — ❌ {verdict.word.lower()}"
    lines.append(f"### llmops: {cell(m.suite)}{status}")
    lines.append("")
    lines.append(f"Run `{cell(m.run_id)}` · {len(run.results)} units · commit `{cell((m.git_commit or 'n/a')[:10])}` · "
                 f"cost ${m.cost_usd + m.judge_cost_usd:.4f} · cache hits {_pct(m.cache_hit_rate)}")
    lines.append("")
    if verdict is not None and (verdict.reasons or verdict.notes):
        for reason in [*verdict.reasons, *verdict.notes]:
            lines.append(f"- {cell(reason, 400)}")
        lines.append("")
    repeats = repeat_lines(run, verdict)
    if repeats:
        lines.extend(f"- {cell(line, 400)}" for line in repeats)
        lines.append("")
    metrics = sorted({name for v in c.variants for name in v.means})
    extra = agent_columns(c.variants)
    header = ["variant", "pass rate (95% CI)", *[f"{cell(name)} mean" for name in metrics], "p50 ms", "$ / 1k cases",
              *extra]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for v in c.variants:
        ci = "" if v.pass_rate.low is None else f" [{_pct(v.pass_rate.low)}–{_pct(v.pass_rate.high)}]"
        means = [("—" if v.means.get(n) is None or v.means[n].value is None else f"{v.means[n].value:.2f}")
                 for n in metrics]
        p50 = "—" if v.latency_p50_s is None else f"{v.latency_p50_s * 1000:.0f}"
        cost = v.cost_per_1000_cases_usd + v.judge_cost_per_1000_cases_usd
        lines.append("| " + " | ".join([cell(v.label), _pct(v.pass_rate.value) + ci, *means, p50, f"{cost:.4f}",
                                        *agent_cells(v, extra)]) + " |")
    lines.append("")
    if len(c.variants) > 1:
        lines.append(cell(c.verdict, 2000))
        lines.append("")
        significant = [p for p in c.pairwise if p.significant]
        if significant:
            lines.append("| pair | metric | difference | 95% CI | adjusted p |")
            lines.append("|---|---|---|---|---|")
            for p in significant:
                scale = 100 if p.metric == PASS_RATE else 1
                unit = " pts" if p.metric == PASS_RATE else ""
                lines.append(f"| {cell(p.b)} vs {cell(p.a)} | {cell(p.metric)} | {p.difference * scale:+.2f}{unit} | "
                             f"[{p.low * scale:+.2f}, {p.high * scale:+.2f}] | {p.p_adjusted:.3g} |")
            lines.append("")
    calibrated = [t for t in trust or [] if t.calibrated]
    if calibrated:
        lines.append("Evaluator calibration against human labels: " + "; ".join(
            f"{cell(t.name)} accuracy {(t.accuracy or 0) * 100:.0f}%, kappa "
            f"{'—' if t.kappa is None else f'{t.kappa:.2f}'} (n={t.n})" for t in calibrated) + ".")
        lines.append("")
    bad = [u for u in run.results if u.status in ("fail", "error", "unmeasured")]
    if bad:
        lines.append(f"<details><summary>{len(bad)} failing, errored or unmeasured units</summary>")
        lines.append("")
        lines.append("| case | variant | status | output | why |")
        lines.append("|---|---|---|---|---|")
        for u in bad[:max_failures]:
            why = u.error or "; ".join(f"{s.name}: {s.reason}" for s in u.scores if s.status != "pass")
            if u.trajectory:
                why += " · trajectory: " + " → ".join(trajectory_line(step) for step in u.trajectory)
            lines.append(f"| {cell(u.case_id)} | {cell(u.variant)} | {u.status} | {cell(u.output or '', 80)} | "
                         f"{cell(why, 400 if u.trajectory else 160)} |")
        if len(bad) > max_failures:
            lines.append(f"| … | {len(bad) - max_failures} more | | | |")
        lines.append("")
        lines.append("</details>")
    return "\n".join(lines) + "\n"
