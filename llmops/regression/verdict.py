"""The CI verdict: absolute gates plus a paired, significance-tested comparison with a baseline.

How a regression is decided (per prompt × model, against the matching baseline variant):

- Cases are paired by ``case_id`` (+ model + prompt reference; when the run and the baseline
  each have a single prompt reference but different ones, by ``case_id`` + model, which is how
  a new prompt version is compared with the old one).
- Pass rate: per case, ``d = current pass rate - baseline pass rate`` over its repeats. The
  test is the paired sign-flip (randomisation) test on ``d``. With one repeat ``d`` is in
  {-1, 0, 1} and the test is exactly McNemar's exact test on the discordant pairs; with
  repeats it also uses how much each case moved, and it stays exact (the distribution is
  computed on the grid of possible pass-rate differences). It needs no normality and treats
  each case, not each repeat, as the independent unit: repeats of a case are correlated.
- Evaluator means: per case, the mean score over repeats; the same sign-flip test (exact on a
  grid, else 10 000 seeded Monte Carlo flips).
- Tests are one-sided at ``gate.alpha`` ("did it get worse?" for the gate, and separately
  "did it get better?" for reporting), so the gate's false-alarm rate per metric is at most
  alpha. The paired bootstrap interval shown with each comparison is at ``1 - 2·alpha``
  (90% for alpha = 0.05): the two-sided interval that matches a one-sided test at alpha. It
  describes the size of the change; the decision comes from the exact test.
- A metric regresses only when the drop is statistically significant AND larger than
  ``gate.tolerance``: significant-but-tiny changes (big suites) and large-but-noisy ones
  (small suites) do not fail CI.

Each metric of each variant is tested at alpha without a multiplicity correction: with k
metrics the chance of some false alarm is at most k·alpha (less, as the metrics are correlated).
Lower ``gate.alpha`` for suites with many evaluators or variants.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from llmops.evalsets.models import Gate
from llmops.evaluators.bias_suite import BiasPool, SuiteBias
from llmops.regression.baseline import (
    Baseline,
    BaselineSource,
    CaseRecord,
    VariantRecord,
    aggregate_cases,
    tally_fields,
)
from llmops.runner.results import ExactSum, StatusCounts, Tally, VariantKey, by_group, group_key
from llmops.stats import (
    bootstrap_mean_ci,
    flakiness_from_counts,
    minimum_detectable_effect,
    paired_permutation_test,
    wilson_interval,
)

if TYPE_CHECKING:
    from llmops.runner.results import RunResult, UnitResult


class MetricComparison(BaseModel):
    """A paired comparison of one metric of one variant with the baseline.

    Attributes:
        metric: ``pass_rate`` or an evaluator name.
        kind: ``pass_rate`` or ``mean``.
        pairs: Cases measured on both sides (the test's sample size).
        baseline: Baseline mean over the paired cases.
        current: Current mean over the paired cases.
        difference: Mean paired difference, current - baseline (negative is a drop).
        ci_low: Lower bound of the paired bootstrap interval of the difference.
        ci_high: Upper bound of that interval.
        confidence: Level of the interval (``1 - 2·alpha``).
        p_worse: One-sided p-value for "current is worse".
        p_better: One-sided p-value for "current is better".
        test: ``mcnemar-exact``, ``sign-flip-exact`` or ``sign-flip-monte-carlo``.
        worse: Paired cases that went down.
        better: Paired cases that went up.
        mde: Approximate smallest drop detectable with 80% power (pass rate only).
        underpowered: ``mde`` is larger than the tolerance.
        regressed: Significant drop larger than the tolerance.
        improved: Significant rise larger than the tolerance.
    """

    model_config = ConfigDict(frozen=True)

    metric: str
    kind: Literal["pass_rate", "mean"]
    pairs: int
    baseline: float | None = None
    current: float | None = None
    difference: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    confidence: float | None = None
    p_worse: float | None = None
    p_better: float | None = None
    test: str = ""
    worse: int = 0
    better: int = 0
    mde: float | None = None
    underpowered: bool = False
    regressed: bool = False
    improved: bool = False


class CaseChange(BaseModel):
    """One case whose pass rate moved between the baseline and this run.

    Attributes:
        case_id: The case id.
        baseline_pass_rate: Pass rate in the baseline (over its repeats).
        current_pass_rate: Pass rate in this run.
        difference: current - baseline.
        flaky: Whether the case is flaky in either run.
    """

    model_config = ConfigDict(frozen=True)

    case_id: str
    baseline_pass_rate: float
    current_pass_rate: float
    difference: float
    flaky: bool = False


class VariantVerdict(StatusCounts, VariantKey):
    """Gates and baseline comparison of one prompt × model.

    The counts and pass rate (:class:`~llmops.runner.results.StatusCounts`) cover all its units:
    every case, every repeat.

    Attributes:
        prompt: Prompt reference.
        model: Model.
        baseline_prompt: The baseline prompt it was compared with (None without a baseline).
        baseline_model: The baseline model it was compared with.
        gated_pass_rate: The pass rate the gate used (without quarantined cases).
        pass_rate_low: Lower Wilson 95% bound of the gated pass rate.
        pass_rate_high: Upper Wilson 95% bound.
        means: Mean score per evaluator over the gated units.
        unmeasured_by_evaluator: Unmeasured (or errored) scores per evaluator.
        flaky_cases: Cases that both passed and failed over repeats, here or in the baseline.
        quarantined_cases: Cases flaky in the baseline, excluded from the gate (``quarantine_flaky``).
        gated_decided: Passed + failed units the gate's pass rate covers (quarantined cases left out).
        cases: Cases (case × this prompt × model) in this run.
        stable_pass: Cases whose measured repeats all passed (in this run).
        stable_fail: Cases whose measured repeats all failed.
        flaky: Cases that both passed and failed over their repeats.
        unmeasured_cases: Cases with no measured repeat.
        k: Repeats per case (the k of pass^k).
        pass_hat_k: pass^k: the estimated chance that all k repeats of a case pass, averaged over
            the ``pass_hat_k_cases`` cases with k measured repeats (per case ``C(c, k) / C(n, k)``
            for c passes in n measured repeats; with n = k: 1 when every repeat passed, else 0).
        pass_hat_k_cases: Cases pass^k covers.
        comparisons: Paired comparisons with the baseline (pass rate first).
        regressed_cases: Paired cases whose pass rate went down, largest drop first.
        improved_cases: Paired cases whose pass rate went up, largest rise first.
        new_cases: Cases of this run without a baseline record.
        missing_cases: Baseline cases this run did not have.
        failures: Why this variant fails the gate (empty when it passes).
        undecided: Why this variant could not be judged (nothing measured).
    """

    model_config = ConfigDict(frozen=True)

    baseline_prompt: str | None = None
    baseline_model: str | None = None
    gated_pass_rate: float | None = None
    pass_rate_low: float | None = None
    pass_rate_high: float | None = None
    means: dict[str, float | None] = Field(default_factory=dict)
    unmeasured_by_evaluator: dict[str, int] = Field(default_factory=dict)
    flaky_cases: list[str] = Field(default_factory=list)
    quarantined_cases: list[str] = Field(default_factory=list)
    gated_decided: int = 0
    cases: int = 0
    stable_pass: int = 0
    stable_fail: int = 0
    flaky: int = 0
    unmeasured_cases: int = 0
    k: int = 1
    pass_hat_k: float | None = None
    pass_hat_k_cases: int = 0
    comparisons: list[MetricComparison] = Field(default_factory=list)
    regressed_cases: list[CaseChange] = Field(default_factory=list)
    improved_cases: list[CaseChange] = Field(default_factory=list)
    new_cases: list[str] = Field(default_factory=list)
    missing_cases: list[str] = Field(default_factory=list)
    failures: list[str] = Field(default_factory=list)
    undecided: list[str] = Field(default_factory=list)

    @property
    def name(self) -> str:
        """``prompt × model``."""
        return f"{self.prompt} × {self.model}"

    @property
    def repeats(self) -> RepeatStats:
        """Its cases' behaviour over their repeats (the flat figures above, as one value)."""
        return RepeatStats(**{name: getattr(self, key) for name, key in _REPEAT_KEYS.items()})

    @property
    def regressed(self) -> bool:
        """Whether any metric regressed against the baseline."""
        return any(c.regressed for c in self.comparisons)

    @property
    def improved(self) -> bool:
        """Whether any metric improved significantly."""
        return any(c.improved for c in self.comparisons)


NO_BASELINE_NOTE = ("no baseline: only the absolute gates were applied "
                    "(write one with `llmops run SUITE --update-baseline`)")

#: What a verdict can say, and the exit code of each (``llmops run``, :func:`llmops.gate.run_and_gate`).
Outcome = Literal["passed", "failed", "budget_exhausted", "unmeasured"]
EXIT_CODES: dict[str, int] = {"passed": 0, "failed": 1, "budget_exhausted": 3, "unmeasured": 5}
OUTCOME_WORDS: dict[str, str] = {"passed": "PASSED", "failed": "FAILED", "budget_exhausted": "STOPPED AT BUDGET",
                                 "unmeasured": "NOTHING MEASURED"}


class Verdict(BaseModel):
    """The outcome of gating a run.

    Outcomes, most decisive first: ``failed`` (a gate failed or a regression was found, in what
    was measured), ``budget_exhausted`` (the run stopped at ``max_cost_usd`` before every unit ran;
    nothing that ran failed; resumable), ``unmeasured`` (nothing left to judge: every unit was
    unmeasured, quarantined or missing), ``passed``. Only ``passed`` passes CI.

    Attributes:
        passed: Whether CI should pass (``outcome == "passed"``).
        exit_code: 0 passed, 1 failed, 3 budget exhausted, 5 nothing measured (:data:`EXIT_CODES`).
        outcome: Which of the outcomes above (default: from ``passed``).
        reasons: Why it passed or failed, one human-readable line each.
        notes: Things to know that did not decide the verdict (small suite, unmeasured scores,
            changed evaluators, cases without a baseline, ...).
        gate: The gate that was applied.
        baseline: Provenance of the baseline compared with, None without one.
        units: Units in the run.
        errors: Units with status ``error``.
        variants: Per prompt × model details, for reports.
        bias: Suite-level counterfactual bias per prompt × model × ``bias`` evaluator (every
            case's variants pooled in one stratified test; gated by ``gate.max_bias``).
    """

    model_config = ConfigDict(frozen=True)

    passed: bool
    exit_code: int
    outcome: Outcome | None = None
    reasons: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    gate: Gate = Field(default_factory=Gate)
    baseline: BaselineSource | None = None
    units: int = 0
    errors: int = 0
    variants: list[VariantVerdict] = Field(default_factory=list)
    bias: list[SuiteBias] = Field(default_factory=list)

    @model_validator(mode="after")
    def _exit_code(self) -> Verdict:
        if self.outcome is None:
            object.__setattr__(self, "outcome", "passed" if self.passed else "failed")
        if self.passed != (self.outcome == "passed"):
            raise ValueError(f"outcome {self.outcome} contradicts passed={self.passed}")
        if self.exit_code != EXIT_CODES[self.outcome or "failed"]:
            raise ValueError(f"exit_code {self.exit_code} contradicts passed={self.passed} ({self.outcome})")
        return self

    @property
    def word(self) -> str:
        """The outcome in one upper-case phrase (``PASSED``, ``FAILED``, ...), for reports."""
        return OUTCOME_WORDS[self.outcome or "failed"]

    def repeat_lines(self) -> list[str]:
        """Per variant: stable/flaky case counts and pass^k (plain text)."""
        return [f"{v.name}: {v.repeats.line()}" for v in self.variants]

    @property
    def regressed(self) -> bool:
        """Whether any variant regressed against the baseline."""
        return any(v.regressed for v in self.variants)

    def lines(self) -> list[str]:
        """Reasons, then notes (prefixed ``note:``), for plain-text renderers."""
        return [*self.reasons, *(f"note: {n}" for n in self.notes)]


# ---- helpers ---------------------------------------------------------------------------------


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:.1f}%"


def _pts(x: float) -> str:
    return f"{x * 100:+.1f} pts"


def _size(x: float) -> str:
    return f"{abs(x) * 100:.1f} pts"


def _change(c: MetricComparison) -> str:
    if c.kind == "pass_rate":
        return f"{_pct(c.baseline)} → {_pct(c.current)}"
    if c.baseline is None or c.current is None:
        return "n/a"
    return f"{c.baseline:.3f} → {c.current:.3f}"


def has_quality_criterion(gate: Gate) -> bool:
    """Whether a gate says how good results must be (else, without a baseline, the default gate applies)."""
    return (gate.min_pass_rate is not None or bool(gate.min_mean)
            or getattr(gate, "max_bias", None) is not None)


def _unit_fates(t: VariantRecord, quarantined: int) -> str:
    parts = [f"{n} {what}" for n, what in ((t.unmeasured, "unmeasured"), (t.errors, "errored"),
                                           (t.skipped, "skipped"), (quarantined, "quarantined")) if n]
    return f"{t.units} units: " + (", ".join(parts) if parts else "none decided")


def _listed(ids: list[str]) -> str:
    return ", ".join(ids[:10]) + (" ..." if len(ids) > 10 else "")


def _p(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2g}"


def _error_limit_exceeded(errors: int, ran: int, max_errors: float | None) -> str | None:
    if max_errors is None or errors == 0:
        return None
    if max_errors >= 1:
        if errors > max_errors:
            return f"{errors} errored units exceed max_errors {max_errors:g}"
        return None
    share = errors / ran if ran else 1.0
    if share > max_errors:
        return f"{errors} errored units ({share:.1%} of {ran}) exceed max_errors {max_errors:.1%}"
    return None


def _background(diffs: list[Fraction]) -> float:
    # Disagreement that noise alone would cause: noise moves cases both ways equally, a real
    # change moves them one way. Twice the smaller direction estimates the noise part without
    # letting the change under test inflate it.
    if not diffs:
        return 0.0
    up = math.fsum(float(d * d) for d in diffs if d > 0)
    down = math.fsum(float(d * d) for d in diffs if d < 0)
    return min(1.0, 2 * min(up, down) / len(diffs))


class _Options:
    def __init__(self, gate: Gate, n_resamples: int, permutation_resamples: int, seed: int) -> None:
        self.gate = gate
        self.n_resamples = n_resamples
        self.permutation_resamples = permutation_resamples
        self.seed = seed
        # A one-sided test at alpha matches a two-sided interval at 1 - 2·alpha.
        self.confidence = max(0.5, 1 - 2 * gate.alpha)


def _compare(metric: str, kind: Literal["pass_rate", "mean"], before: list[float | Fraction],
             after: list[float | Fraction], single: bool, opts: _Options) -> MetricComparison:
    diffs = [a - b for a, b in zip(after, before, strict=True)]
    if not diffs:
        return MetricComparison(metric=metric, kind=kind, pairs=0)
    gate = opts.gate
    test = paired_permutation_test(diffs, n_resamples=opts.permutation_resamples, seed=opts.seed)
    ci = bootstrap_mean_ci(diffs, n_resamples=opts.n_resamples, confidence=opts.confidence, seed=opts.seed)
    name = "mcnemar-exact" if single and test.method == "exact" else f"sign-flip-{test.method}"
    diff = test.mean_difference
    mde: float | None = None
    if kind == "pass_rate":
        fractions = [Fraction(d) for d in diffs]
        raw = minimum_detectable_effect(len(diffs), alpha=gate.alpha,
                                        background_discordance=_background(fractions))
        mde = None if math.isinf(raw) else raw
    n = len(diffs)
    return MetricComparison(
        metric=metric, kind=kind, pairs=n,
        baseline=math.fsum(float(b) for b in before) / n, current=math.fsum(float(a) for a in after) / n,
        difference=diff, ci_low=ci.low, ci_high=ci.high, confidence=opts.confidence,
        p_worse=test.p_less, p_better=test.p_greater, test=name,
        worse=sum(1 for d in diffs if d < 0), better=sum(1 for d in diffs if d > 0), mde=mde,
        underpowered=kind == "pass_rate" and (mde is None or mde > gate.tolerance),
        regressed=test.p_less < gate.alpha and -diff > gate.tolerance,
        improved=test.p_greater < gate.alpha and diff > gate.tolerance)


def _pairing(run_variants: list[tuple[str, str]], baseline: Baseline,
             notes: list[str]) -> dict[tuple[str, str], tuple[str, str]]:
    base_variants = baseline.variants()
    run_prompts = {p for p, _ in run_variants}
    base_prompts = {p for p, _ in base_variants}
    pairs: dict[tuple[str, str], tuple[str, str]] = {}
    for prompt, model in run_variants:
        if (prompt, model) in base_variants:
            pairs[(prompt, model)] = (prompt, model)
        elif len(run_prompts) == 1 and len(base_prompts) == 1:
            (base_prompt,) = base_prompts
            if (base_prompt, model) in base_variants:
                pairs[(prompt, model)] = (base_prompt, model)
                notes.append(f"{prompt} × {model}: compared with baseline prompt {base_prompt}")
        if (prompt, model) not in pairs:
            notes.append(f"{prompt} × {model}: no baseline for this prompt and model; "
                         "only the absolute gates apply")
    for prompt, model in base_variants:
        if (prompt, model) not in pairs.values():
            notes.append(f"baseline variant {prompt} × {model} is not in this run")
    return pairs


def _edited_cases(run: RunResult, baseline: Baseline, notes: list[str]) -> set[str]:
    """Cases of a Langfuse dataset whose item was edited since the baseline: not compared.

    An edited item keeps its id, so pairing it by id would compare the new content's result with
    the old content's and could report a regression that is only an edit of the data.
    """
    pin = run.manifest.dataset
    before = baseline.source.case_hashes
    if pin is None or not before:
        return set()
    edited = sorted(cid for cid, digest in pin.case_hashes.items() if cid in before and before[cid] != digest)
    if edited:
        notes.append(f"{len(edited)} case(s) of Langfuse dataset {pin.name} were edited since the baseline "
                     f"(content changed; not compared with their old results): {_listed(edited)}")
    return set(edited)


def _provenance_notes(run: RunResult, baseline: Baseline, notes: list[str]) -> None:
    source, m = baseline.source, run.manifest
    if source.dataset_hash and m.dataset_hash and source.dataset_hash != m.dataset_hash:
        notes.append("the suite's cases changed since the baseline was written; only cases "
                     "present in both are compared")
    base_eval = {e.get("name"): e for e in source.evaluators}
    for e in m.evaluators:
        old = base_eval.get(e.get("name"))
        if old is None:
            continue
        for key in ("kind", "version", "threshold"):
            if old.get(key) != e.get(key):
                notes.append(f"evaluator {e.get('name')}: {key} changed ({old.get(key)} → {e.get(key)}) "
                             "since the baseline; differences may come from the evaluator")
    for ref, digest in m.prompts.items():
        old_digest = source.prompts.get(ref)
        if old_digest and digest and old_digest != digest:
            notes.append(f"prompt {ref} was edited since the baseline (content hash changed)")
    for model, resolved in m.models.items():
        old_resolved = source.models.get(model)
        if old_resolved and resolved and old_resolved != resolved:
            notes.append(f"model {model} now resolves to {resolved} (baseline: {old_resolved})")
    if source.shard and source.shard != m.shard:
        notes.append(f"the baseline covers shard {source.shard} only")
    if source.status != "completed":
        notes.append(f"the baseline run was {source.status}: some cases may be missing")


@dataclass(frozen=True)
class RepeatStats:
    """How the cases of one prompt × model behaved over their repeats.

    A case is classified by its measured repeats (unmeasured and errored repeats are left out):
    ``stable-pass`` when all passed, ``stable-fail`` when all failed, ``flaky`` when both
    happened, ``unmeasured`` when none was measured.

    Attributes:
        cases: Cases counted.
        stable_pass: Cases whose measured repeats all passed.
        stable_fail: Cases whose measured repeats all failed.
        flaky: Cases that both passed and failed.
        unmeasured: Cases without a measured repeat.
        k: Repeats per case.
        pass_hat_k: pass^k, the estimated chance that all k repeats of a case pass, averaged over
            ``pass_hat_k_cases`` (cases with at least k measured repeats; per case ``C(c, k) / C(n, k)``
            for c passes in n measured repeats).
        pass_hat_k_cases: Cases pass^k covers.
    """

    cases: int
    stable_pass: int
    stable_fail: int
    flaky: int
    unmeasured: int
    k: int
    pass_hat_k: float | None
    pass_hat_k_cases: int

    def line(self) -> str:
        """One plain-text line naming what each figure covers."""
        text = (f"{self.cases} cases over {self.k} repeat(s): {self.stable_pass} stable-pass, "
                f"{self.stable_fail} stable-fail, {self.flaky} flaky, {self.unmeasured} unmeasured")
        if self.pass_hat_k is not None:
            text += f"; pass^{self.k} {self.pass_hat_k * 100:.1f}% over {self.pass_hat_k_cases} cases"
        return text


# A verdict carries RepeatStats' figures flat (its JSON is flat and documented), `unmeasured`
# renamed because the verdict's own `unmeasured` counts units: the one mapping both ways.
_REPEAT_KEYS: dict[str, str] = {f.name: "unmeasured_cases" if f.name == "unmeasured" else f.name
                                for f in dataclasses.fields(RepeatStats)}


class RepeatTally:
    """Streaming :class:`RepeatStats`: one case (its repeats) at a time."""

    def __init__(self, k: int) -> None:
        self.k = max(1, k)
        self.classes = {"stable-pass": 0, "stable-fail": 0, "flaky": 0, "unmeasured": 0}
        self.pass_hat_k = ExactSum()
        self.pass_hat_k_cases = 0

    def add_case(self, units: Sequence[UnitResult]) -> str:
        """Count one case's repeats; returns its class."""
        passed = sum(u.status == "pass" for u in units)
        failed = sum(u.status == "fail" for u in units)
        status = flakiness_from_counts(passed, failed).status
        self.classes[status] += 1
        if passed + failed >= self.k:
            self.pass_hat_k.add(math.comb(passed, self.k) / math.comb(passed + failed, self.k))
            self.pass_hat_k_cases += 1
        return status

    def stats(self) -> RepeatStats:
        """The totals."""
        c = self.classes
        return RepeatStats(cases=sum(c.values()), stable_pass=c["stable-pass"], stable_fail=c["stable-fail"],
                           flaky=c["flaky"], unmeasured=c["unmeasured"], k=self.k,
                           pass_hat_k=self.pass_hat_k.value() / self.pass_hat_k_cases if self.pass_hat_k_cases
                           else None, pass_hat_k_cases=self.pass_hat_k_cases)


def repeat_stats(run: RunResult) -> dict[tuple[str, str], RepeatStats]:
    """Per (prompt, model): case classes and pass^k of a run (one streaming pass, for reports)."""
    tallies: dict[tuple[str, str], RepeatTally] = {}
    for units in _case_groups(run.results):
        key = (units[0].prompt, units[0].model)
        tally = tallies.get(key)
        if tally is None:
            tally = tallies[key] = RepeatTally(run.manifest.repeat)
        tally.add_case(units)
    return {key: t.stats() for key, t in sorted(tallies.items())}


class _VariantPass:
    """One prompt × model during the streaming pass of :func:`judge_run`.

    Per case it keeps only what the verdict needs: the ids of flaky cases always, and the case
    records only when there is a baseline to compare them with (whose own records are in
    memory anyway). Everything else is a running total.
    """

    def __init__(self, base_records: dict[str, CaseRecord], quarantine: bool, k: int = 1) -> None:
        self.base_records = base_records
        self.repeats = RepeatTally(k)
        self.base_flaky = {cid for cid, c in base_records.items() if c.flakiness.status == "flaky"}
        self.quarantine = quarantine
        self.everything = Tally()
        self.gated = Tally()
        self.flaky: list[str] = []
        self.newly_flaky: list[str] = []
        self.quarantined: list[str] = []
        self.quarantined_units = 0
        self.records: dict[str, CaseRecord] = {}

    def add_case(self, units: list[UnitResult]) -> None:
        cid = units[0].case_id
        if self.base_records:
            (record,) = aggregate_cases(units)
            self.records[cid] = record
        flaky = self.repeats.add_case(units) == "flaky"
        if flaky and cid not in self.base_flaky and cid in self.base_records:
            self.newly_flaky.append(cid)
        flaky = flaky or cid in self.base_flaky
        if flaky:
            self.flaky.append(cid)
        # Only a case that was already flaky in the baseline may be quarantined: a case that was
        # stable there and is flaky now has changed, and that change is what the gate must see.
        excluded = self.quarantine and cid in self.base_flaky
        if excluded:
            self.quarantined.append(cid)
            self.quarantined_units += len(units)
        for u in units:
            self.everything.add(u)
            if not excluded:
                self.gated.add(u)


def _variant(prompt: str, model: str, acc: _VariantPass, baseline: Baseline | None,
             match: tuple[str, str] | None, opts: _Options, notes: list[str]) -> VariantVerdict:
    gate = opts.gate
    name = f"{prompt} × {model}"
    records = acc.records
    base_records = acc.base_records
    flaky = sorted(acc.flaky)
    repeats = acc.repeats.stats()
    quarantined = sorted(acc.quarantined)
    excluded = set(quarantined)
    everything = VariantRecord(prompt=prompt, model=model, **tally_fields(acc.everything))
    gated = VariantRecord(prompt=prompt, model=model, **tally_fields(acc.gated)) if acc.gated.units else None
    failures: list[str] = []

    # ---- absolute gates ----
    gated_rate = gated.pass_rate if gated else None
    decided = gated.decided if gated else 0
    low, high = wilson_interval(gated.passed, decided) if gated else (0.0, 1.0)
    undecided: list[str] = []
    min_rate = gate.min_pass_rate
    default_gate = min_rate is None and not base_records and not has_quality_criterion(gate)
    if default_gate:
        min_rate = 1.0
        notes.append(f"{name}: default gate (the suite sets no min_pass_rate or min_mean and there is no "
                     "baseline): every measured unit must pass")
    if gated_rate is None:
        # Nothing left to judge is never a pass: its own outcome, with what happened to the units.
        checked = f"min_pass_rate {_pct(min_rate)}" if min_rate is not None else "the gate"
        undecided.append(f"{name}: nothing measured: no measured results to check {checked} "
                         f"({_unit_fates(everything, acc.quarantined_units)})")
    elif min_rate is not None and gated_rate < min_rate:
        if default_gate:
            failures.append(f"{name}: {gated.failed if gated else 0} of {decided} measured units failed; "
                            "with no gate and no baseline every measured unit must pass "
                            "(set gate.min_pass_rate, or write a baseline)")
        else:
            failures.append(f"{name}: pass rate {_pct(gated_rate)} ({gated.passed if gated else 0}/"
                            f"{decided}) is below min_pass_rate {_pct(min_rate)}")
    means = {n: s.mean for n, s in (gated.scores if gated else everything.scores).items()}
    for evaluator, minimum in sorted(gate.min_mean.items()) if gated_rate is not None else ():
        mean = means.get(evaluator)
        if mean is None:
            failures.append(f"{name}: evaluator {evaluator} has no measured scores to check "
                            f"min_mean {minimum:g}")
        elif mean < minimum:
            failures.append(f"{name}: mean {evaluator} {mean:.3f} is below min_mean {minimum:g}")
    unmeasured_by = {n: s.unmeasured + s.errors for n, s in everything.scores.items()}
    if everything.unmeasured or any(unmeasured_by.values()):
        detail = ", ".join(f"{n}: {k}" for n, k in unmeasured_by.items() if k)
        notes.append(f"{name}: {everything.unmeasured} of {everything.units} units unmeasured"
                     + (f" (unmeasured scores: {detail})" if detail else "")
                     + "; they count neither as pass nor as fail")
    if quarantined:
        notes.append(f"{name}: {len(quarantined)} case(s) flaky in the baseline quarantined ({acc.quarantined_units} "
                     "units excluded from the gate): " + _listed(quarantined))
    if acc.newly_flaky:
        notes.append(f"{name}: {len(acc.newly_flaky)} case(s) stable in the baseline are flaky now (judged, "
                     "never quarantined): " + _listed(sorted(acc.newly_flaky)))
    if gate.quarantine_flaky and not base_records:
        notes.append(f"{name}: quarantine_flaky excludes only cases that are flaky in the baseline; without a "
                     "baseline no case is quarantined")
    elif flaky and not gate.quarantine_flaky:
        notes.append(f"{name}: {len(flaky)} flaky case(s) (both passed and failed over repeats); set "
                     "gate.quarantine_flaky to exclude the cases already flaky in the baseline")

    # ---- baseline comparison ----
    comparisons: list[MetricComparison] = []
    regressed_cases: list[CaseChange] = []
    improved_cases: list[CaseChange] = []
    new_cases = sorted(set(records) - set(base_records)) if base_records else []
    missing = sorted(set(base_records) - set(records)) if base_records else []
    if base_records:
        ids = sorted((set(records) & set(base_records)) - excluded)
        pr_ids = [i for i in ids if records[i].decided and base_records[i].decided]
        before = [Fraction(base_records[i].passed, base_records[i].decided) for i in pr_ids]
        after = [Fraction(records[i].passed, records[i].decided) for i in pr_ids]
        single = all(records[i].decided == 1 and base_records[i].decided == 1 for i in pr_ids)
        comparisons.append(_compare("pass_rate", "pass_rate", list(before), list(after), single, opts))
        flaky_set = set(flaky)
        for i, b, a in zip(pr_ids, before, after, strict=True):
            if a == b:
                continue
            change = CaseChange(case_id=i, baseline_pass_rate=float(b), current_pass_rate=float(a),
                                difference=float(a - b), flaky=i in flaky_set)
            (regressed_cases if a < b else improved_cases).append(change)
        regressed_cases.sort(key=lambda c: (c.difference, c.case_id))
        improved_cases.sort(key=lambda c: (-c.difference, c.case_id))
        evaluators = sorted({n for i in ids for n in records[i].scores} & {n for i in ids
                                                                           for n in base_records[i].scores})
        for evaluator in evaluators:
            b_vals: list[float | Fraction] = []
            a_vals: list[float | Fraction] = []
            for i in ids:
                b_stats, a_stats = base_records[i].scores.get(evaluator), records[i].scores.get(evaluator)
                if b_stats and a_stats and b_stats.mean is not None and a_stats.mean is not None:
                    b_vals.append(b_stats.mean)
                    a_vals.append(a_stats.mean)
            comparisons.append(_compare(evaluator, "mean", b_vals, a_vals, False, opts))
        if new_cases:
            notes.append(f"{name}: {len(new_cases)} case(s) not in the baseline (not compared)")
        if missing:
            notes.append(f"{name}: {len(missing)} baseline case(s) missing from this run")
        for c in comparisons:
            if c.regressed:
                failures.append(_regression_reason(name, c, gate))
            elif c.improved:
                notes.append(f"{name}: {'pass rate' if c.kind == 'pass_rate' else 'mean ' + c.metric} "
                             f"improved significantly ({_change(c)}, one-sided p={_p(c.p_better)})")
        rate = comparisons[0]
        if rate.pairs and rate.underpowered:
            detectable = (f"only pass-rate drops of about {_size(-rate.mde)} or more"
                          if rate.mde is not None else "no pass-rate drop")
            notes.append(f"{name}: {rate.pairs} paired cases can reliably (80% power) detect "
                         f"{detectable}, more than the tolerance {_size(gate.tolerance)}; "
                         "add cases (or repeats) to detect smaller regressions")
        elif not rate.pairs:
            notes.append(f"{name}: no case has a measured result on both sides; pass rate not compared")

    return VariantVerdict(
        prompt=prompt, model=model, baseline_prompt=match[0] if base_records and match else None,
        baseline_model=match[1] if base_records and match else None, units=everything.units,
        passed=everything.passed, failed=everything.failed, unmeasured=everything.unmeasured,
        errors=everything.errors, skipped=everything.skipped, pass_rate=everything.pass_rate,
        gated_pass_rate=gated_rate, pass_rate_low=low if decided else None,
        pass_rate_high=high if decided else None, means=means, unmeasured_by_evaluator=unmeasured_by,
        flaky_cases=flaky, quarantined_cases=quarantined, gated_decided=decided,
        **{key: getattr(repeats, name) for name, key in _REPEAT_KEYS.items()}, comparisons=comparisons,
        regressed_cases=regressed_cases, improved_cases=improved_cases, new_cases=new_cases,
        missing_cases=missing, failures=failures, undecided=undecided)


def _variant_keys(results: Sequence[UnitResult]) -> set[tuple[str, str]]:
    keys = getattr(results, "variant_keys", None)
    if callable(keys):  # a store-backed sequence answers from SQL instead of reading every result
        return set(keys())
    return {(r.prompt, r.model) for r in results}


def _case_groups(results: Sequence[UnitResult]) -> Iterator[list[UnitResult]]:
    """The results as lists of the repeats of one case × prompt × model."""
    current: list[UnitResult] = []
    key = ""
    for r in by_group(results):
        k = group_key(r)
        if current and k != key:
            yield current
            current = []
        key = k
        current.append(r)
    if current:
        yield current


def _regression_reason(name: str, c: MetricComparison, gate: Gate) -> str:
    level = f"{(c.confidence or 0) * 100:.0f}% CI"
    if c.kind == "pass_rate":
        return (f"{name}: pass rate regressed {_change(c)} ({_pts(c.difference or 0)} over {c.pairs} "
                f"paired cases, {level} [{_pts(c.ci_low or 0)}, {_pts(c.ci_high or 0)}]; one-sided "
                f"p={_p(c.p_worse)}, {c.test}; {c.worse} case(s) worse, {c.better} better; tolerance "
                f"{_size(gate.tolerance)})")
    return (f"{name}: mean {c.metric} regressed {_change(c)} ({c.difference or 0:+.3f} over {c.pairs} "
            f"paired cases, {level} [{c.ci_low or 0:+.3f}, {c.ci_high or 0:+.3f}]; one-sided "
            f"p={_p(c.p_worse)}, {c.test}; tolerance {gate.tolerance:g})")


def judge_run(run: RunResult, gate: Gate, baseline: Baseline | None = None, *, n_resamples: int = 2000,
              permutation_resamples: int = 10_000, seed: int = 0) -> Verdict:
    """Judge a run against its gate and (optionally) a baseline.

    Absolute gates (per prompt × model): ``min_pass_rate`` over measured units, ``min_mean``
    per evaluator, and, over the whole run, ``max_errors`` (a count when >= 1, a fraction of
    the units that ran when < 1). With a baseline, each metric is compared case by case (see
    the module docstring); a regression fails the verdict only when it is significant at
    ``gate.alpha`` and larger than ``gate.tolerance``. With ``gate.quarantine_flaky`` the cases
    that were already flaky in the baseline are left out of all of it (a case stable there and
    flaky now is judged: that change is a regression to catch). Without a baseline and without
    ``min_pass_rate``/``min_mean`` in the gate, the default gate applies: every measured unit must
    pass. The outcome (see :class:`Verdict`) is ``failed`` when anything fails, else
    ``budget_exhausted`` when the budget stopped the run, else ``unmeasured`` when a variant has
    nothing left to judge, else ``passed``.

    The verdict is deterministic: resampling uses ``seed``.

    Args:
        run: The run to judge.
        gate: The suite's gate.
        baseline: The committed baseline, or None (absolute gates only).
        n_resamples: Bootstrap resamples for the confidence intervals.
        permutation_resamples: Monte Carlo sign flips when an exact test is too large.
        seed: Seed of all resampling.

    Returns:
        The verdict, with reasons, notes and per-variant comparisons.
    """
    opts = _Options(gate, n_resamples, permutation_resamples, seed)
    notes: list[str] = []
    reasons: list[str] = []
    variant_keys = sorted(_variant_keys(run.results))
    pairing: dict[tuple[str, str], tuple[str, str]] = {}
    if baseline is not None:
        pairing = _pairing(variant_keys, baseline, notes)
        _provenance_notes(run, baseline, notes)
    else:
        notes.append(NO_BASELINE_NOTE)
    if run.manifest.status not in ("completed", "budget_exhausted"):
        notes.append(f"the run is {run.manifest.status.replace('_', ' ')}: "
                     "the verdict covers the units that ran")
    # One pass over the results in case order (read from the run store in that order when the
    # run is stored): each case's repeats are aggregated together, then dropped.
    edited = _edited_cases(run, baseline, notes) if baseline is not None else set()
    accs: dict[tuple[str, str], _VariantPass] = {}
    for p, m in variant_keys:
        match = pairing.get((p, m))
        base = baseline.cases_of(*match) if baseline and match else {}
        accs[(p, m)] = _VariantPass({cid: r for cid, r in base.items() if cid not in edited},
                                    gate.quarantine_flaky, run.manifest.repeat)
    total = errors = ran = 0
    bias_pool = BiasPool()
    for units in _case_groups(run.results):
        total += len(units)
        errors += sum(u.status == "error" for u in units)
        ran += sum(u.status != "skipped" for u in units)
        key = (units[0].prompt, units[0].model)
        if key not in accs:  # the results changed since their variants were listed
            accs[key] = _VariantPass({}, gate.quarantine_flaky, run.manifest.repeat)
            variant_keys = sorted(accs)
        accs[key].add_case(units)
        bias_pool.add(units)
    variants = [_variant(p, m, accs[(p, m)], baseline, pairing.get((p, m)), opts, notes)
                for p, m in variant_keys if accs[(p, m)].everything.units]
    undecided: list[str] = []
    for v in variants:
        reasons.extend(v.failures)
        undecided.extend(v.undecided)
    skipped = sum(v.skipped for v in variants)
    if not total:
        undecided.append("nothing measured: the run has no results")
    if run.manifest.status in ("running", "interrupted") and total < run.manifest.units:
        # A run killed (or still going) must not pass CI on the units it happened to finish.
        reasons.append(f"the run is incomplete: {total} of {run.manifest.units} units have a "
                       f"result (resume it with `llmops run --resume {run.manifest.run_id}`)")
    bias = bias_pool.results(seed=seed)
    for b in bias:
        notes.extend(b.lines())
        if gate.max_bias is not None:
            reasons.extend(b.failures(gate.max_bias))
    if gate.max_bias is not None and not any(b.categories for b in bias):
        reasons.append(f"no counterfactual bias result to check max_bias {gate.max_bias:g} (no `bias` "
                       "evaluator compared two groups in any case)")
    too_many = _error_limit_exceeded(errors, ran, gate.max_errors)
    if too_many:
        reasons.append(too_many)
    budget_stop = run.manifest.status == "budget_exhausted" or skipped > 0
    outcome: Outcome
    if reasons:
        outcome = "failed"
        if budget_stop:
            notes.append(f"the run also stopped at its budget: {ran} of {total} units ran")
    elif budget_stop:
        outcome = "budget_exhausted"
        reasons.append(f"the run stopped at its budget (max_cost_usd) before it was complete: {ran} of "
                       f"{max(total, run.manifest.units)} "
                       f"units ran, {skipped} not run; a verdict over part of the suite is not a pass. Resume it "
                       f"with `llmops run --resume {run.manifest.run_id} --max-cost-usd MORE`")
        reasons.extend(undecided)
    elif undecided:
        outcome = "unmeasured"
        reasons.extend(undecided)
    else:
        outcome = "passed"
    passed = outcome == "passed"
    if passed:
        for v in variants:
            line = f"{v.name}: pass rate {_pct(v.gated_pass_rate)} over {v.gated_decided} measured units"
            if v.quarantined_cases:
                line += f" ({len(v.quarantined_cases)} quarantined case(s) left out)"
            if v.comparisons:
                c = v.comparisons[0]
                if c.pairs and c.difference is not None:
                    line += (f"; vs baseline {_pts(c.difference)} over {c.pairs} paired cases "
                             f"(one-sided p={_p(c.p_worse)}), no regression beyond tolerance "
                             f"{_size(gate.tolerance)}")
            reasons.append(line)
        if errors:
            reasons.append(f"{errors} errored unit(s), within max_errors {gate.max_errors:g}"
                           if gate.max_errors is not None else f"{errors} errored unit(s), no limit set")
    return Verdict(passed=passed, exit_code=EXIT_CODES[outcome], outcome=outcome, reasons=reasons, notes=notes,
                   gate=gate, baseline=baseline.source if baseline else None, units=total, errors=errors,
                   variants=variants, bias=bias)
