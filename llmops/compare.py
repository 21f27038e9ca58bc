"""Compare models and prompt versions on one suite: quality with intervals, cost, latency, verdict.

Every variant (prompt version × model) answers the same cases, so comparisons are paired by
case: a sign-flip permutation test on per-case differences (exact McNemar for pass/fail) with
Holm's correction across all pairs, and a paired bootstrap interval on each difference. The
verdict paragraph only claims what those tests support.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from llmops.regression.stats import (
    bootstrap_mean_ci,
    paired_bootstrap_ci,
    paired_permutation_test,
    wilson_interval,
)
from llmops.runner.results import RunResult, UnitResult, percentile

PASS_RATE = "pass rate"


class Interval(BaseModel):
    """A point estimate with a confidence interval."""

    value: float | None
    low: float | None = None
    high: float | None = None
    n: int = 0


class VariantStats(BaseModel):
    """One prompt version × model."""

    label: str
    prompt: str
    model: str
    cases: int
    units: int
    pass_rate: Interval
    means: dict[str, Interval] = Field(default_factory=dict)
    unmeasured: int = 0
    errors: int = 0
    latency_p50_s: float | None = None
    latency_p95_s: float | None = None
    tokens_per_case: float = 0.0
    cost_per_1000_cases_usd: float = 0.0
    judge_cost_per_1000_cases_usd: float = 0.0


class Pairwise(BaseModel):
    """A paired comparison of two variants on one metric (``b - a``)."""

    a: str
    b: str
    metric: str
    n: int
    difference: float
    low: float
    high: float
    p_value: float
    p_adjusted: float
    significant: bool


class Comparison(BaseModel):
    """The outcome of :func:`compare` / :func:`compare_run`."""

    run_id: str
    suite: str
    alpha: float
    quality_metric: str
    variants: list[VariantStats]
    pairwise: list[Pairwise]
    pareto_cost: list[str]
    pareto_latency: list[str]
    verdict: str

    def variant(self, label: str) -> VariantStats:
        """A variant by label."""
        return next(v for v in self.variants if v.label == label)


def _label(unit: UnitResult, prompts: int, models: int) -> str:
    if prompts > 1 and models > 1:
        return f"{unit.prompt} × {unit.model}"
    return unit.prompt if prompts > 1 else unit.model


def _per_case(units: list[UnitResult], metric: str) -> dict[str, float]:
    """Per-case value of a metric, averaged over repeats (measured values only)."""
    values: dict[str, list[float]] = {}
    for u in units:
        if metric == PASS_RATE:
            if u.status in ("pass", "fail"):
                values.setdefault(u.case_id, []).append(1.0 if u.status == "pass" else 0.0)
        else:
            score = u.score(metric)
            if score is not None and score.measured and score.value is not None:
                values.setdefault(u.case_id, []).append(score.value)
    return {case: statistics.fmean(v) for case, v in values.items()}


def _interval_of(per_case: dict[str, float], *, seed: int) -> Interval:
    if not per_case:
        return Interval(value=None)
    values = list(per_case.values())
    if len(values) == 1:
        return Interval(value=values[0], low=None, high=None, n=1)
    ci = bootstrap_mean_ci(values, seed=seed)
    return Interval(value=ci.estimate, low=ci.low, high=ci.high, n=len(values))


def _pass_interval(units: list[UnitResult]) -> Interval:
    decided = [u for u in units if u.status in ("pass", "fail")]
    passed = sum(u.status == "pass" for u in decided)
    if not decided:
        return Interval(value=None)
    low, high = wilson_interval(passed, len(decided))
    return Interval(value=passed / len(decided), low=low, high=high, n=len(decided))


def _holm(p_values: list[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (controls the family-wise error rate)."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [1.0] * len(p_values)
    running = 0.0
    m = len(p_values)
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def pareto_front(points: dict[str, tuple[float, float]]) -> list[str]:
    """Labels not dominated on (quality: higher is better, cost: lower is better)."""
    front = []
    for label, (quality, cost) in points.items():
        dominated = any(
            q >= quality and c <= cost and (q > quality or c < cost)
            for other, (q, c) in points.items() if other != label)
        if not dominated:
            front.append(label)
    return sorted(front, key=lambda lbl: points[lbl][1])


def compare_run(run: RunResult, *, alpha: float = 0.05, quality: str | None = None, seed: int = 0) -> Comparison:
    """Compare the variants of a run that holds several models and/or prompt versions.

    Args:
        run: A run with at least one variant.
        alpha: Family-wise significance level (Holm-corrected over all pairs and metrics).
        quality: The metric that defines "better" (default: pass rate).
        seed: Seed of the bootstrap.
    """
    groups: dict[tuple[str, str], list[UnitResult]] = {}
    for r in run.results:
        if r.status != "skipped":
            groups.setdefault((r.prompt, r.model), []).append(r)
    prompts = len({p for p, _ in groups})
    models = len({m for _, m in groups})
    metrics = [PASS_RATE]
    for units in groups.values():
        for u in units:
            for s in u.scores:
                if s.name not in metrics:
                    metrics.append(s.name)
    quality = quality or PASS_RATE
    variants: list[VariantStats] = []
    per_case: dict[str, dict[str, dict[str, float]]] = {}
    for (prompt, model), units in groups.items():
        label = _label(units[0], prompts, models)
        cases = {u.case_id for u in units}
        per_case[label] = {m: _per_case(units, m) for m in metrics}
        latencies = [u.latency_s for u in units if u.latency_s is not None and not u.cached]
        if not latencies:  # fully replayed: the recorded latencies are still the best evidence
            latencies = [u.latency_s for u in units if u.latency_s is not None]
        n_cases = max(1, len(cases))
        variants.append(VariantStats(
            label=label, prompt=prompt, model=model, cases=len(cases), units=len(units),
            pass_rate=_pass_interval(units),
            means={m: _interval_of(per_case[label][m], seed=seed) for m in metrics if m != PASS_RATE},
            unmeasured=sum(u.status == "unmeasured" for u in units),
            errors=sum(u.status == "error" for u in units),
            latency_p50_s=percentile(latencies, 0.5), latency_p95_s=percentile(latencies, 0.95),
            tokens_per_case=sum(u.prompt_tokens + u.completion_tokens for u in units) / n_cases,
            cost_per_1000_cases_usd=1000 * sum(u.cost_usd for u in units) / n_cases,
            judge_cost_per_1000_cases_usd=1000 * sum(u.judge_cost_usd for u in units) / n_cases))
    raw: list[tuple[str, str, str, int, float, float, float, float]] = []
    labels = [v.label for v in variants]
    for i, a in enumerate(labels):
        for b in labels[i + 1:]:
            for metric in metrics:
                va, vb = per_case[a][metric], per_case[b][metric]
                common = sorted(set(va) & set(vb))
                if len(common) < 2:
                    continue
                before = [va[c] for c in common]
                after = [vb[c] for c in common]
                test = paired_permutation_test([y - x for x, y in zip(before, after, strict=True)], seed=seed)
                ci = paired_bootstrap_ci(before, after, seed=seed)
                raw.append((a, b, metric, len(common), ci.estimate, ci.low, ci.high, test.p_two_sided))
    adjusted = _holm([row[7] for row in raw])
    pairwise = [Pairwise(a=a, b=b, metric=m, n=n, difference=d, low=lo, high=hi, p_value=p, p_adjusted=adj,
                         significant=adj < alpha)
                for (a, b, m, n, d, lo, hi, p), adj in zip(raw, adjusted, strict=True)]

    def quality_of(v: VariantStats) -> float:
        iv = v.pass_rate if quality == PASS_RATE else v.means.get(quality, Interval(value=None))
        return iv.value if iv.value is not None else -math.inf

    cost_points = {v.label: (quality_of(v), v.cost_per_1000_cases_usd + v.judge_cost_per_1000_cases_usd)
                   for v in variants}
    latency_points = {v.label: (quality_of(v), v.latency_p50_s if v.latency_p50_s is not None else math.inf)
                      for v in variants}
    comparison = Comparison(run_id=run.run_id, suite=run.manifest.suite, alpha=alpha, quality_metric=quality,
                            variants=variants, pairwise=pairwise, pareto_cost=pareto_front(cost_points),
                            pareto_latency=pareto_front(latency_points), verdict="")
    comparison.verdict = _verdict(comparison, quality_of)
    return comparison


def _fmt(metric: str, value: float) -> str:
    return f"{value * 100:.0f}%" if metric == PASS_RATE else f"{value:.2f}"


def _verdict(c: Comparison, quality_of: Any) -> str:
    if not c.variants:
        return "Nothing to compare: the run has no results."
    if len(c.variants) == 1:
        v = c.variants[0]
        return f"Only one variant ({v.label}) was run; there is nothing to compare it with."
    ranked = sorted(c.variants, key=quality_of, reverse=True)
    best = ranked[0]
    metric = c.quality_metric
    best_value = quality_of(best)
    if best_value == -math.inf:
        return f"No variant has a measured {metric}; the comparison cannot rank them."
    sentences = [f"On {best.cases} cases, {best.label} has the highest {metric} ({_fmt(metric, best_value)})."]
    beaten: list[str] = []
    tied: list[str] = []
    for other in ranked[1:]:
        pair = next((p for p in c.pairwise if p.metric == metric and {p.a, p.b} == {best.label, other.label}),
                    None)
        if pair is None:
            tied.append(f"{other.label} (too few paired cases to test)")
            continue
        diff = abs(pair.difference)
        text = f"{other.label} (by {_fmt(metric, diff)}, 95% CI {_fmt(metric, abs(pair.low))}–" \
               f"{_fmt(metric, abs(pair.high))}, adjusted p={pair.p_adjusted:.3g})"
        (beaten if pair.significant else tied).append(text)
    if beaten:
        sentences.append("It is significantly better than " + "; ".join(beaten) + ".")
    if tied:
        sentences.append("Its lead over " + "; ".join(tied) + " is not statistically significant on "
                         f"{best.cases} paired cases: do not call a winner yet, add cases or repeats.")
    cheapest = c.pareto_cost[0] if c.pareto_cost else None
    if cheapest and cheapest != best.label:
        sentences.append(f"On the quality/cost Pareto front, {cheapest} is the cheapest option.")
    fastest = c.pareto_latency[0] if c.pareto_latency else None
    if fastest and fastest != best.label and fastest != cheapest:
        sentences.append(f"On the quality/latency front, {fastest} answers fastest.")
    sentences.append(f"Tests are paired by case, Holm-corrected over {len(c.pairwise)} comparisons at "
                     f"alpha={c.alpha:g}.")
    return " ".join(sentences)


def compare(suite: str | Path, *, models: Sequence[str] | None = None, prompts: Sequence[str] | None = None,
            repeat: int | None = None, alpha: float = 0.05, quality: str | None = None,
            **run_kwargs: Any) -> Comparison:
    """Run a suite over several models and/or prompt versions and compare them.

    Args:
        suite: Suite file or name.
        models: Models to compare (default: the suite's).
        prompts: Prompt references to compare (default: the suite's).
        repeat: Repeats per case.
        alpha: Family-wise significance level.
        quality: Metric that defines "better" (default: pass rate; or an evaluator name).
        **run_kwargs: Passed to :func:`llmops.runner.engine.run_suite` (settings, client, cache, ...).
    """
    from llmops.runner.engine import run_suite

    run = run_suite(suite, models=models, prompts=prompts, repeat=repeat, **run_kwargs)
    return compare_run(run, alpha=alpha, quality=quality)
