"""Regression gating: paired statistics, committed baselines and CI verdicts.

Typical use::

    from llmops.regression import baseline_path, judge_run, read_baseline

    path = baseline_path(settings, "my-suite")
    verdict = judge_run(run, suite.gate, read_baseline(path) if path.exists() else None)
    raise SystemExit(verdict.exit_code)
"""

from llmops.regression.baseline import (
    Baseline,
    BaselineSource,
    CaseRecord,
    ScoreStats,
    VariantRecord,
    aggregate_cases,
    aggregate_variants,
    baseline_from_run,
    baseline_path,
    dumps_baseline,
    read_baseline,
    write_baseline,
)
from llmops.regression.verdict import (
    EXIT_CODES,
    CaseChange,
    MetricComparison,
    RepeatStats,
    VariantVerdict,
    Verdict,
    judge_run,
    repeat_stats,
)
from llmops.stats import (
    BootstrapCI,
    Flakiness,
    PairedTestResult,
    PermutationResult,
    binomial_test,
    bootstrap_mean_ci,
    classify_flakiness,
    flakiness_from_counts,
    mcnemar_exact,
    mean_difference,
    minimum_detectable_effect,
    paired_bootstrap_ci,
    paired_permutation_test,
    permutation_test,
    sign_test,
    wilson_interval,
)

__all__ = [
    "EXIT_CODES",
    "Baseline",
    "BaselineSource",
    "BootstrapCI",
    "CaseChange",
    "CaseRecord",
    "Flakiness",
    "MetricComparison",
    "PairedTestResult",
    "PermutationResult",
    "RepeatStats",
    "ScoreStats",
    "VariantRecord",
    "VariantVerdict",
    "Verdict",
    "aggregate_cases",
    "aggregate_variants",
    "baseline_from_run",
    "baseline_path",
    "binomial_test",
    "bootstrap_mean_ci",
    "classify_flakiness",
    "dumps_baseline",
    "flakiness_from_counts",
    "judge_run",
    "mcnemar_exact",
    "mean_difference",
    "minimum_detectable_effect",
    "paired_bootstrap_ci",
    "paired_permutation_test",
    "permutation_test",
    "read_baseline",
    "repeat_stats",
    "sign_test",
    "wilson_interval",
    "write_baseline",
]
