"""Terminal rendering of runs and verdicts (rich). Model output is printed as plain text, never markup."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from llmops.runner.results import RunResult, UnitResult, VariantSummary, with_status

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.text import Text


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.0f}%"


def _num(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value * 1000:.0f}"


def _plain(text: str) -> Text:
    """User text (suite, model, evaluator names) as a literal: ``[x]`` in it is never markup."""
    from rich.text import Text

    return Text(text)


def summary_table(summaries: list[VariantSummary], title: str = "") -> RenderableType:
    """One row per prompt × model: counts, pass rate, evaluator means, latency, tokens, cost."""
    from rich.table import Table

    evaluators: list[str] = []
    for s in summaries:
        for name in s.means:
            if name not in evaluators:
                evaluators.append(name)
    table = Table(title=_plain(title) if title else None, show_lines=False)
    # On a narrow terminal cells wrap ("fold") instead of ending in an ellipsis: a cut id or
    # number is a wrong one.
    for column in ("prompt", "model", "pass", "fail", "unmeas.", "error", "pass rate"):
        table.add_column(column, justify="left" if column in ("prompt", "model") else "right", overflow="fold")
    for name in evaluators:
        table.add_column(_plain(f"{name} (mean)"), justify="right", overflow="fold")
    for column in ("p50 ms", "p95 ms", "tokens", "cost $"):
        table.add_column(column, justify="right", overflow="fold")
    for s in summaries:
        means = [_num(s.means.get(n)) for n in evaluators]
        table.add_row(_plain(s.prompt), _plain(s.model), str(s.passed), str(s.failed), str(s.unmeasured), str(s.errors),
                      _pct(s.pass_rate), *means, _ms(s.latency_p50_s), _ms(s.latency_p95_s),
                      str(s.prompt_tokens + s.completion_tokens), f"{s.cost_usd + s.judge_cost_usd:.4f}")
    return table


#: Widest the tool-use and streaming table gets (a piped report is read in 80-column logs).
AGENT_TABLE_WIDTH = 80


def agent_summary_table(summaries: list[VariantSummary]) -> RenderableType | None:
    """Tool use and streaming per prompt × model, or None when no unit ran tools or streamed.

    A table of its own under the run summary, with only the columns some variant has data for
    (tool calls and steps per task for agent loops; TTFT p50/p95 for streamed units): the main
    table is already wide, and this one stays within 80 columns (long names wrap in their cell).
    """
    from rich.table import Table

    tools = any(s.agent_units for s in summaries)
    ttft = any(s.ttft_p50_s is not None for s in summaries)
    if not tools and not ttft:
        return None
    table = Table(title="tools and streaming", show_lines=False)
    table.add_column("prompt × model", overflow="fold", ratio=1)
    columns = (["tool calls", "steps/task"] if tools else []) + (["TTFT p50 ms", "TTFT p95 ms"] if ttft else [])
    for column in columns:
        table.add_column(column, justify="right", overflow="fold", no_wrap=True)
    for s in summaries:
        cells = {"tool calls": "—" if s.tool_calls is None else str(s.tool_calls),
                 "steps/task": _num(s.steps_per_task, 1),
                 "TTFT p50 ms": _ms(s.ttft_p50_s), "TTFT p95 ms": _ms(s.ttft_p95_s)}
        table.add_row(_plain(f"{s.prompt} × {s.model}"), *[cells[c] for c in columns])
    return table


def _fit(console: Console, table: RenderableType, width: int) -> RenderableType:
    """``table`` at most ``width`` columns wide (its natural width when that is less)."""
    from rich.measure import Measurement

    natural = Measurement.get(console, console.options, table).maximum
    if natural > width and hasattr(table, "width"):
        table.width = width
    return table


def printable(text: str, *, keep: str = "\n\t") -> str:
    """Untrusted text made safe for a terminal: control and format characters shown escaped.

    Model output can carry ANSI escape sequences (clear the screen, move the cursor up and
    overwrite a FAILED line, set the window title) and bidi overrides that reorder what is
    shown; rich strips only some control characters, so every one becomes visible text.
    """
    out = []
    for ch in text:
        if ch not in keep and unicodedata.category(ch) in ("Cc", "Cf"):
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


def _snippet(text: str | None, limit: int = 160) -> str:
    if text is None:
        return ""
    flat = printable(" ".join(text.split()))
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


_NOT_PASSED = ("fail", "error", "unmeasured")


def failure_lines(results: Iterable[UnitResult], limit: int = 20) -> list[str]:
    """Readable lines for failed, errored and unmeasured units (plain text)."""
    lines: list[str] = []
    # Only the shown ones are kept: a failing run read from the store may have thousands.
    bad: list[UnitResult] = []
    more = 0
    for r in results:
        if r.status in _NOT_PASSED:
            if len(bad) < limit:
                bad.append(r)
            else:
                more += 1
    for r in bad:
        lines.append(f"{r.status.upper():10} {r.case_id} [{r.prompt} × {r.model}] repeat {r.repeat}")
        if r.error:
            lines.append(f"           error: {_snippet(r.error, 300)}")
        else:
            lines.append(f"           output: {_snippet(r.output)}")
        for s in r.scores:
            if s.status != "pass":
                value = "—" if s.value is None else f"{s.value:.2f}"
                threshold = "" if s.threshold is None else f" (threshold {s.threshold:g})"
                lines.append(f"           {s.name}: {s.status} {value}{threshold} — {_snippet(s.reason, 200)}")
    if more:
        lines.append(f"... and {more} more")
    return lines


def print_run(console: Console, run: RunResult, *, verdict: Any = None) -> None:
    """Print the summary table, failures and the verdict of a run."""
    m = run.manifest
    summaries = run.summary()
    console.print(summary_table(summaries, title=f"{m.suite} — run {m.run_id}"))
    agents = agent_summary_table(summaries)
    if agents is not None:
        console.print(_fit(console, agents, min(console.width, AGENT_TABLE_WIDTH)))
    for line in failure_lines(with_status(run.results, *_NOT_PASSED)):
        console.print(line, markup=False, highlight=False)
    hit = "—" if m.cache_hit_rate is None else f"{m.cache_hit_rate * 100:.0f}%"
    recorded = f" (cached answers: ${m.recorded_cost_usd:.4f} when recorded)" if m.recorded_cost_usd else ""
    console.print(f"units {len(run.results)} · provider calls {m.provider_calls} · cache hits {hit} · "
                  f"cost ${m.cost_usd + m.judge_cost_usd:.4f}{recorded} · status {m.status}", markup=False)
    for line in repeat_lines(run, verdict):
        console.print(line, markup=False, highlight=False)
    if verdict is not None:
        style = "bold green" if verdict.passed else "bold red"
        console.print(f"[{style}]{verdict.word}[/]", markup=True)
        for reason in [*verdict.reasons, *verdict.notes]:
            console.print(f"  {reason}", markup=False, highlight=False)


def repeat_lines(run: RunResult, verdict: Any = None) -> list[str]:
    """Per variant, with repeats: stable-pass / stable-fail / flaky case counts and pass^k (plain text)."""
    if run.manifest.repeat < 2:
        return []
    if verdict is not None:
        return [f"repeats: {line}" for line in verdict.repeat_lines()]
    from llmops.regression.verdict import repeat_stats

    return [f"repeats: {p} × {m}: {s.line()}" for (p, m), s in repeat_stats(run).items()]


def comparison_table(c: Any) -> RenderableType:
    """Rich table of a :class:`llmops.compare.Comparison`."""
    from rich.table import Table

    metrics = sorted({m for v in c.variants for m in v.means})
    table = Table(title=_plain(f"{c.suite} — run {c.run_id}"))
    table.add_column("variant", overflow="fold")
    table.add_column("pass rate (95% CI)", justify="right", overflow="fold")
    for m in metrics:
        table.add_column(_plain(f"{m} mean (95% CI)"), justify="right", overflow="fold")
    for column in ("p50 ms", "p95 ms", "tokens/case", "$ / 1k cases", "front"):
        table.add_column(column, justify="right", overflow="fold")
    extra = agent_columns(c.variants)
    for column in extra:
        table.add_column(column, justify="right", overflow="fold")

    def f(x: float, pct: bool) -> str:
        return f"{x * 100:.0f}%" if pct else f"{x:.2f}"

    def interval(iv: Any, pct: bool) -> str:
        if iv is None or iv.value is None:
            return "—"
        return f(iv.value, pct) if iv.low is None else f"{f(iv.value, pct)} [{f(iv.low, pct)}–{f(iv.high, pct)}]"

    for v in c.variants:
        fronts = [name for name, members in (("cost", c.pareto_cost), ("latency", c.pareto_latency))
                  if v.label in members]
        table.add_row(_plain(v.label), interval(v.pass_rate, True), *[interval(v.means.get(m), False) for m in metrics],
                      _ms(v.latency_p50_s), _ms(v.latency_p95_s), f"{v.tokens_per_case:.0f}",
                      f"{v.cost_per_1000_cases_usd + v.judge_cost_per_1000_cases_usd:.4f}", ", ".join(fronts),
                      *agent_cells(v, extra))
    return table


def agent_columns(variants: Any) -> list[str]:
    """The tool-use and streaming columns some variant has data for (none for plain text suites)."""
    columns = []
    if any(v.tool_call_accuracy is not None for v in variants):
        columns.append("tool-call accuracy")
    if any(v.steps_per_task is not None for v in variants):
        columns.append("steps/task")
    if any(v.ttft_p50_s is not None for v in variants):
        columns += ["TTFT p50 ms", "TTFT p95 ms"]
    return columns


def agent_cells(v: Any, columns: list[str]) -> list[str]:
    """One variant's cells for :func:`agent_columns`."""
    values = {"tool-call accuracy": "—" if v.tool_call_accuracy is None else f"{v.tool_call_accuracy * 100:.0f}%",
              "steps/task": "—" if v.steps_per_task is None else f"{v.steps_per_task:.1f}",
              "TTFT p50 ms": _ms(v.ttft_p50_s), "TTFT p95 ms": _ms(v.ttft_p95_s)}
    return [values[c] for c in columns]


def print_comparison(console: Console, c: Any) -> None:
    """Table, significant pairs and the verdict paragraph of a comparison."""
    console.print(comparison_table(c))
    for p in c.pairwise:
        if p.significant:
            scale, unit = (100, " pts") if p.metric == "pass rate" else (1, "")
            console.print(f"  {p.b} vs {p.a} on {p.metric}: {p.difference * scale:+.2f}{unit} "
                          f"[{p.low * scale:+.2f}, {p.high * scale:+.2f}], adjusted p={p.p_adjusted:.3g}",
                          markup=False, highlight=False)
    console.print(c.verdict, markup=False, highlight=False)
