"""The regression runner: case × prompt version × model × repeat, async, resumable, budgeted.

Each unit renders the prompt, calls the model through the client (cache, retries, per-model
concurrency), runs the evaluators, and commits its :class:`UnitResult` to the run store before
the next one is counted as done. Failures are data (``error`` / ``unmeasured``), never a crash.
"""

from __future__ import annotations

import asyncio
import hashlib
import platform
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops._digits import small_int
from llmops.config import Settings
from llmops.credentials import public_params
from llmops.errors import EvalsetError, LLMOpsError, ProviderError, UserError
from llmops.evalsets.loader import LoadedSuite
from llmops.evalsets.models import Case, EvaluatorSpec
from llmops.evaluators.base import (
    EvalContext,
    Evaluator,
    Sample,
    Score,
    create_evaluator,
    load_project_evaluators,
)
from llmops.llm.agent import AgentRun, load_function, run_agent
from llmops.llm.budget import Budget, spending, watching_refusals
from llmops.llm.client import LLMClient, tally_provider_calls
from llmops.llm.types import Completion
from llmops.prompts.template import PromptVersion
from llmops.runner.preflight import DryRun as DryRun  # re-exported: dry_run lived here
from llmops.runner.preflight import dry_run as dry_run
from llmops.runner.prepare import RunOptions, prepare_resume, prepare_run
from llmops.runner.results import CaseRecord, Manifest, RunResult, UnitResult, status_of, unit_key
from llmops.runner.store import RunPlan, RunStore, StoredResults

if TYPE_CHECKING:
    from llmops.tracing.experiments import ExperimentPlan
    from llmops.tracing.tracer import Tracer

ResultCallback = Callable[[UnitResult], None]
MAX_REPEAT = 1000
# The manifest fields each unit's trace carries: what identifies a run and makes it reproducible.
# Paths, counters and timings stay in the run store (one copy per run, not one per unit).
TRACE_MANIFEST_FIELDS = frozenset({"run_id", "suite", "llmops_version", "git_commit", "git_dirty", "prompts",
                                   "models", "params", "seed", "repeat", "dataset_hash", "cache_mode"})


@dataclass(frozen=True)
class Unit:
    """One unit of work."""

    case: Case
    prompt: str
    model: str
    repeat: int

    @property
    def key(self) -> str:
        """The unit key."""
        return unit_key(self.case.id, self.prompt, self.model, self.repeat)


def parse_shard(shard: str | None) -> tuple[int, int] | None:
    """Parse ``I/N`` (1-based) into (index, count)."""
    if shard is None:
        return None
    left, sep, right = shard.partition("/")
    index, count = small_int(left), small_int(right)
    if not sep or index is None or count is None or not 1 <= index <= count:
        raise UserError(f"--shard expects I/N with 1 <= I <= N, got '{shard}'", key="--shard")
    return index, count


def in_shard(case_id: str, shard: tuple[int, int] | None) -> bool:
    """Deterministic shard membership by case id: adding cases never moves existing ones."""
    if shard is None:
        return True
    digest = int(hashlib.sha256(case_id.encode("utf-8")).hexdigest()[:12], 16)
    return digest % shard[1] == shard[0] - 1


def plan_units(suite: LoadedSuite, prompts: Sequence[str], models: Sequence[str], repeat: int,
               shard: tuple[int, int] | None = None) -> Iterator[Unit]:
    """Enumerate the units of a run (lazily; big suites never hold them all)."""
    for case in suite.cases:
        if not in_shard(case.id, shard):
            continue
        for prompt in prompts:
            for model in models:
                for r in range(repeat):
                    yield Unit(case=case, prompt=prompt, model=model, repeat=r)


def run_tracer(settings: Settings) -> Tracer | None:
    """The tracer for an eval run's units, or None (see :attr:`llmops.config.Settings.traces_eval_runs`).

    Decided before anything of tracing is imported: a replay does not pay for those modules.
    """
    if not settings.traces_eval_runs:
        return None
    from llmops.tracing.tracer import get_tracer

    return get_tracer(settings)


def new_run_id() -> str:
    """Sortable, unique run id: ``YYYYmmdd-HHMMSS-xxxxxx``."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


def git_state(root: Path) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the repository at ``root``, or (None, None) outside git."""
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=5, check=False)
        if commit.returncode != 0:
            return None, None
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=5, check=False)
        return commit.stdout.strip() or None, bool(status.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return None, None


def case_inputs(pv: PromptVersion, case: Case) -> dict[str, Any]:
    """The inputs a prompt version is rendered with for a case."""
    inputs = dict(case.inputs)
    # A RAG prompt that declares `contexts` gets the case's contexts unless inputs set them.
    if "contexts" in pv.meta.inputs and "contexts" not in inputs and case.contexts:
        inputs["contexts"] = list(case.contexts)
    return inputs


def _contexts(case: Case, inputs: dict[str, Any]) -> tuple[str, ...]:
    if case.contexts:
        return tuple(case.contexts)
    raw = inputs.get("contexts")
    if isinstance(raw, list):
        return tuple(str(c) for c in raw)
    return ()


async def _scores(evaluators: Sequence[Evaluator], sample: Sample, ctx: EvalContext) -> list[Score]:
    """Every evaluator's score, in order: waiting ones concurrently, local ones in line.

    A local evaluator never waits on anything, so a task of its own would only add the event
    loop's overhead (three per unit, measurable in a cached replay).
    """
    waiting = [e.evaluate(sample, ctx) for e in evaluators if not e.local]
    waited = iter(await asyncio.gather(*waiting) if len(waiting) > 1 else [await c for c in waiting])
    return [await e.evaluate(sample, ctx) if e.local else next(waited) for e in evaluators]


@dataclass
class PartStats:
    """What one process of a run did (it is merged with the others' at the end).

    Attributes:
        units: Units run and stored.
        provider_calls: Calls that reached a provider (cache misses, retries included).
        skipped: (case id, prompt, model, repeat) of units skipped for the budget.
    """

    units: int = 0
    provider_calls: int = 0
    skipped: list[tuple[str, str, str, int]] = field(default_factory=list)


class Runner:
    """Runs one suite. Most users call :func:`run_suite` instead.

    Args:
        suite: The loaded suite.
        settings: Configuration.
        client: LLM client (judge calls use it too).
        store: Run store.
        models: Models to run (default: suite's, else the configured default).
        prompts: Prompt references (default: the suite's).
        repeat: Repeats per case (default: the suite's).
        seed: Base seed (default: suite's, else settings').
        max_cost_usd: Stop scheduling before this would be exceeded.
        shard: ``I/N`` to run one deterministic slice of the cases.
        progress: Show progress on stderr: True a rich bar, False nothing, None (default) a bar on
            a terminal and otherwise (a CI log, a pipe) a plain line every 10% or 10 seconds.
        on_result: Called with each unit result as it is stored.
        only: Restrict the run to these (case id, prompt ref, model) combinations.
        tracer: Records one trace per unit (its generations and judge calls nested, the
            evaluator scores attached, the manifest as metadata); None: no tracing.
    """

    def __init__(self, suite: LoadedSuite, *, settings: Settings, client: LLMClient, store: RunStore,
                 models: Sequence[str] | None = None, prompts: Sequence[str] | None = None,
                 repeat: int | None = None, seed: int | None = None, max_cost_usd: float | None = None,
                 shard: str | None = None, progress: bool | None = None,
                 on_result: ResultCallback | None = None, tracer: Tracer | None = None,
                 only: set[tuple[str, str, str]] | None = None) -> None:
        self.suite = suite
        self.only = only
        self.settings = settings
        self.client = client
        self.store = store
        self.models = list(models or suite.suite.models or [settings.default_model])
        self.prompt_refs = list(prompts or suite.suite.prompts)
        self.repeat = repeat if repeat is not None else suite.suite.repeat
        if self.repeat < 1:
            raise UserError(f"repeat must be at least 1, got {self.repeat}", key="repeat")
        if self.repeat > MAX_REPEAT:  # the suite file's own bound, for flags and the API too
            raise UserError(f"repeat must be at most {MAX_REPEAT}, got {self.repeat}", key="repeat")
        if max_cost_usd is not None and not max_cost_usd >= 0:  # `not >=` also refuses NaN
            raise UserError(f"max_cost_usd must be 0 or more, got {max_cost_usd}", key="max_cost_usd")
        self.seed = seed if seed is not None else (suite.suite.seed if suite.suite.seed is not None
                                                   else settings.seed)
        self.max_cost_usd = max_cost_usd
        self.shard = parse_shard(shard)
        self.shard_text = shard
        self.progress = progress
        self.on_result = on_result
        self.tracer = tracer
        if tracer is not None:
            tracer.attach(client)  # its generations and judge calls nest under the unit's trace
        load_project_evaluators(settings.root, settings.evaluator_modules)
        from llmops.api import load_prompt

        # Load every prompt version up front: a bad reference fails before any call is made.
        # One rule with `llmops complete` and `prompts render`: labels resolve where
        # `prompt_source` says (Langfuse first, local labels as the fallback).
        self.prompts: dict[str, PromptVersion] = {ref: load_prompt(ref, settings) for ref in self.prompt_refs}
        self.evaluators: list[Evaluator] = [self._make(spec) for spec in suite.suite.evaluators]
        self._case_evaluators: dict[str, list[Evaluator]] = {
            c.id: [self._make(spec) for spec in c.assertions] for c in suite.cases if c.assertions}
        for model in self.models:
            if not model.strip():
                raise UserError("empty model name", key="models")
        self._check_scripted_tools()

    def _check_scripted_tools(self) -> None:
        """Every scripted tool is declared by every prompt of the run, and its python function imports."""
        for case in self.suite.cases:
            if not case.tools:
                continue
            file, line = self.suite.case_lines.get(case.id, (str(self.suite.path), None))
            for ref, pv in self.prompts.items():
                for name in case.tools:
                    if name not in pv.tool_names:
                        raise EvalsetError(
                            f"case '{case.id}' scripts tool '{name}', which {ref} does not declare",
                            file=file, line=line, key=f"{case.id}.tools.{name}",
                            hint=f"declared tools: {', '.join(pv.tool_names) or 'none (add tools: to the prompt)'}")
            for name, scripts in case.tools.items():
                for script in scripts:
                    if script.python:
                        try:
                            load_function(script.python)
                        except ValueError as exc:
                            raise EvalsetError(f"case '{case.id}', tool '{name}': {exc}", file=file, line=line,
                                               key=f"{case.id}.tools.{name}.python") from None

    @staticmethod
    def _make(spec: EvaluatorSpec) -> Evaluator:
        return create_evaluator(spec.kind, name=spec.name, threshold=spec.threshold, **spec.params)

    def units(self) -> Iterator[Unit]:
        """All units of this run (restricted to ``only`` = {(case id, prompt, model)} when given)."""
        units = plan_units(self.suite, self.prompt_refs, self.models, self.repeat, self.shard)
        if self.only is None:
            return units
        only = self.only
        return (u for u in units if (u.case.id, u.prompt, u.model) in only)

    def plan(self) -> RunPlan:
        """The resumable plan."""
        return RunPlan(suite_path=str(self.suite.path.resolve()), models=self.models,
                       prompts=self.prompt_refs, repeat=self.repeat, seed=self.seed,
                       params=public_params(self.suite.suite.params), cache=self.client.cache_mode,
                       concurrency=self.client.concurrency, shard=self.shard_text,
                       max_cost_usd=self.max_cost_usd)

    def new_manifest(self, run_id: str) -> Manifest:
        """A manifest for a run that is about to start."""
        from llmops._version import __version__

        commit, dirty = git_state(self.settings.root)
        evaluators = [{"name": e.name, "kind": e.kind, "version": e.version, "threshold": e.threshold}
                      for e in self.evaluators]
        return Manifest(
            run_id=run_id, suite=self.suite.name, suite_path=str(self.suite.path),
            llmops_version=__version__, python_version=platform.python_version(),
            git_commit=commit, git_dirty=dirty,
            prompts={ref: pv.content_hash for ref, pv in self.prompts.items()},
            prompt_source=self.settings.prompt_source,
            models={m: self.client.resolve(m)[0] for m in self.models},
            params=public_params(self.suite.suite.params), seed=self.seed, repeat=self.repeat,
            evaluators=evaluators, dataset_hash=self.suite.dataset_hash, dataset=self.suite.dataset,
            cases=sum(1 for c in self.suite.cases if in_shard(c.id, self.shard)),
            units=sum(1 for _ in self.units()), shard=self.shard_text, cache_mode=self.client.cache_mode,
            started_at=time.time(),
            case_data=[CaseRecord(id=c.id, inputs=dict(c.inputs), expected=c.expected, contexts=list(c.contexts))
                       for c in self.suite.cases if in_shard(c.id, self.shard)])

    async def _unit(self, unit: Unit, run_id: str) -> UnitResult:
        pv = self.prompts[unit.prompt]
        inputs = case_inputs(pv, unit.case)
        started = time.time()
        base: dict[str, Any] = {"case_id": unit.case.id, "prompt": unit.prompt, "prompt_hash": pv.content_hash,
                "model": unit.model, "repeat": unit.repeat, "started_at": started}
        call_params = {**pv.call_params, **self.suite.suite.params}
        meta = {"prompt": pv.ref, "prompt_name": pv.name, "prompt_version": pv.version,
                "prompt_hash": pv.content_hash, "run_id": run_id, "suite": self.suite.name,
                "case_id": unit.case.id, "repeat": unit.repeat}
        agent: AgentRun | None = None
        try:
            messages = pv.render(inputs)
            # Each repeat samples with its own seed: identical seeds make a seeded local model
            # answer identically even at temperature > 0, and repeats must be independent.
            if unit.case.tools:
                agent = await run_agent(self.client, messages, unit.model, call_params, tools=unit.case.tools,
                                        declared=pv.tool_names, seed=self.seed + unit.repeat,
                                        max_steps=unit.case.max_steps or self.suite.suite.max_steps,
                                        repeat=unit.repeat, metadata=meta)
                completion = agent.completion
            elif call_params.get("stream"):  # `params: {stream: true}`: measured as the app streams it (TTFT)
                stream = self.client.astream(messages, unit.model, call_params, seed=self.seed + unit.repeat,
                                             repeat=unit.repeat, metadata=meta)
                async for _ in stream:
                    pass
                assert stream.completion is not None
                completion = stream.completion
            else:
                completion = await self.client.acomplete(messages, unit.model, call_params,
                                                         seed=self.seed + unit.repeat, repeat=unit.repeat,
                                                         metadata=meta)
        except LLMOpsError as err:
            # A provider error says how many attempts the retry policy paid for before giving up.
            return UnitResult(**base, status="error", error=str(err), ended_at=time.time(),
                              attempts=err.attempts if isinstance(err, ProviderError) else 0)

        async def regenerate(inputs: dict[str, Any], sample: int = 0,
                             params: dict[str, Any] | None = None) -> Completion:
            msgs = pv.render(inputs)
            sample_key = unit.repeat * 100_003 + 1 + sample  # never collides with a real repeat
            return await self.client.acomplete(
                msgs, unit.model, {**call_params, **(params or {})}, seed=self.seed + sample_key,
                repeat=sample_key, metadata={**meta, "purpose": "regenerate"})

        sample_ = Sample(case_id=unit.case.id, output=completion.text, inputs=inputs,
                         expected=unit.case.expected, contexts=_contexts(unit.case, inputs),
                         metadata=dict(unit.case.metadata), completion=completion,
                         messages=tuple(messages), tools=pv.tools,
                         response_format=call_params.get("response_format"),
                         trajectory=tuple(agent.steps) if agent is not None else ())
        ctx = EvalContext(client=self.client, judge_model=self.settings.judge_model, seed=self.seed,
                          regenerate=regenerate,
                          metadata={**meta, "purpose": "judge"})
        evaluators = self.evaluators + self._case_evaluators.get(unit.case.id, [])
        scores = await _scores(evaluators, sample_, ctx)
        if agent is None:
            return UnitResult(
                **base, resolved_model=completion.resolved_model, status=status_of(scores),
                output=completion.text, scores=scores, prompt_tokens=completion.usage.prompt_tokens,
                completion_tokens=completion.usage.completion_tokens, cost_usd=completion.cost_usd,
                judge_cost_usd=sum(s.cost_usd for s in scores), recorded_cost_usd=completion.recorded_cost_usd,
                latency_s=completion.latency_s, cached=completion.cached, attempts=completion.attempts,
                ended_at=time.time(), ttft_s=completion.ttft_s)
        if agent.failure is not None:  # a named, recorded failure of the loop itself
            scores = [Score(name="agent", value=0.0, status="fail", reason=agent.reason, threshold=1.0,
                            evaluator="agent", details={"failure": agent.failure}), *scores]
        calls = agent.completions
        return UnitResult(
            **base, resolved_model=completion.resolved_model, status=status_of(scores),
            output=completion.text, scores=scores, prompt_tokens=sum(c.usage.prompt_tokens for c in calls),
            completion_tokens=sum(c.usage.completion_tokens for c in calls),
            cost_usd=sum(c.cost_usd for c in calls), judge_cost_usd=sum(s.cost_usd for s in scores),
            recorded_cost_usd=sum(c.recorded_cost_usd for c in calls),
            latency_s=sum(c.latency_s for c in calls), cached=all(c.cached for c in calls),
            attempts=sum(c.attempts for c in calls), ended_at=time.time(), trajectory=agent.steps,
            ttft_s=calls[0].ttft_s)

    def experiment_plan(self, manifest: Manifest) -> ExperimentPlan | None:
        """The Langfuse experiment runs this run records its units in, or None.

        See :func:`llmops.tracing.experiments.experiments_wanted`.
        """
        if self.tracer is None or not self.tracer.enabled:
            return None
        from llmops.tracing.experiments import experiment_plan, experiments_wanted

        if not experiments_wanted(self.settings, self.suite):
            return None
        return experiment_plan(self.suite, manifest, [(p, m) for p in self.prompt_refs for m in self.models])

    async def _traced_unit(self, unit: Unit, run_id: str, manifest: dict[str, Any],
                           experiment: ExperimentPlan | None = None) -> UnitResult:
        """Run a unit inside its own trace when a tracer is set (calls made inside nest under it)."""
        if self.tracer is None or not self.tracer.enabled:
            return await self._unit(unit, run_id)
        with self.tracer.eval_unit(run_id=run_id, suite=self.suite.name, case_id=unit.case.id,
                                   prompt=unit.prompt, model=unit.model, repeat=unit.repeat,
                                   inputs=unit.case.inputs, manifest=manifest,
                                   experiment=experiment.for_unit(unit.case, unit.prompt, unit.model)
                                   if experiment is not None else None) as trace:
            result = await self._unit(unit, run_id)
            trace.set_result(result)
        return result

    async def execute(self, run_id: str, manifest: Manifest, done: set[str]) -> RunResult:
        """Run every unit not in ``done``; store each result as it completes."""
        # Results are not collected here: each is in the run store, and the returned run reads them
        # from there (a 20,000-unit run's results as objects would take tens of MB).
        part = await self.execute_part(run_id, manifest, done, progress_total=manifest.units)
        return self.finalize(run_id, manifest, [part])

    async def execute_part(self, run_id: str, manifest: Manifest, done: set[str],
                           part: tuple[int, int] | None = None, *, max_cost_usd: float | None = None,
                           progress_total: int | None = None) -> PartStats:
        """Run this process's share of the units not in ``done``, streaming each result to the store.

        Args:
            run_id: The registered run.
            manifest: Its manifest.
            done: Keys of units that already have a result.
            part: ``(i, n)``, 1-based: every n-th unit starting at the i-th; None: all units.
            max_cost_usd: This part's budget (default: the runner's).
            progress_total: Show a progress bar over this many units (None: no bar).
        """
        todo = (u for k, u in enumerate(self.units())
                if (part is None or k % part[1] == part[0] - 1) and u.key not in done)
        # Every paid call of a unit (judges included) reserves its worst case from this budget
        # before it is sent (llmops.llm.budget): the cap is never crossed, even by concurrent calls.
        budget = Budget(self.max_cost_usd if max_cost_usd is None else max_cost_usd,
                        spent=self.store.spent(run_id) if done and part is None else 0.0)
        workers = max(1, self.client.concurrency * len(self.models))
        skipped: list[Unit] = []
        lock = asyncio.Lock()
        calls_before = self.client.provider_calls
        stats = PartStats()

        def journal() -> None:  # every process of the run counts its calls in the one store
            self.store.count_provider_call(run_id)

        # Every unit's trace carries what identifies the run (the whole manifest is in the run
        # store under the same run id): computed once, not per unit.
        manifest_meta = (manifest.model_dump(include=set(TRACE_MANIFEST_FIELDS))
                         if self.tracer is not None and self.tracer.enabled else {})
        experiment = self.experiment_plan(manifest)
        progress, task = (_progress(self.progress, progress_total, len(done), self.suite.name)
                          if progress_total is not None else (None, None))

        async def worker() -> None:
            while True:
                async with lock:
                    unit = next(todo, None)
                    if unit is None:
                        return
                    if budget.exhausted:
                        skipped.append(unit)
                        continue
                with spending(budget), watching_refusals() as refused, tally_provider_calls(journal) as calls:
                    result = await self._traced_unit(unit, run_id, manifest_meta, experiment)
                if refused:  # cut short by the budget: not a result; a resume runs it again
                    skipped.append(unit)
                    continue
                # Only a result the cache answered alone may wait for a batched commit.
                self.store.add_result(run_id, result, hold=result.cached and calls[0] == 0)
                stats.units += 1
                if self.on_result is not None:
                    self.on_result(result)
                if progress is not None:
                    progress.update(task, advance=1)

        async def follow_store() -> None:  # other processes' results move the bar too
            while progress is not None:
                await asyncio.sleep(0.25)
                progress.update(task, completed=self.store.count(run_id))

        follower = asyncio.ensure_future(follow_store()) if progress is not None and part is not None else None
        try:
            if progress is not None:
                progress.start()
            await asyncio.gather(*(worker() for _ in range(workers)))
        finally:
            if follower is not None:
                follower.cancel()
            if progress is not None:
                progress.stop()
            self.store.flush()
        stats.provider_calls = self.client.provider_calls - calls_before
        stats.skipped = [(u.case.id, u.prompt, u.model, u.repeat) for u in skipped]
        return stats

    def finalize(self, run_id: str, manifest: Manifest, parts: Sequence[PartStats],
                 results: list[UnitResult] | None = None) -> RunResult:
        """Finish the run's manifest and return the run.

        Args:
            run_id: The run.
            manifest: Its manifest as registered.
            parts: What each process did.
            results: All of its stored results, when a caller already holds them; None (the
                default): the returned run reads them from the store when they are used.
        """
        skipped = [UnitResult(case_id=c, prompt=p, model=m, repeat=r, status="skipped",
                              error="budget exhausted (max_cost_usd)")
                   for part in parts for c, p, m, r in part.skipped]
        manifest = self._finish(manifest, run_id, sum(p.provider_calls for p in parts),
                                "budget_exhausted" if skipped else "completed")
        self.store.update_manifest(manifest)
        if results is not None:
            return RunResult(manifest=manifest, results=results + skipped)
        return RunResult(manifest=manifest, results=StoredResults(self.store, run_id, skipped))

    def _finish(self, manifest: Manifest, run_id: str, provider_calls: int, status: str) -> Manifest:
        # Totals come from the stored rows (every result of the run, all processes included),
        # summed a few columns at a time: no result object is built for them.
        usage = self.store.usage(run_id)
        return manifest.model_copy(update={
            # A run extended item by item (pytest-xdist workers) grows past its first plan.
            "units": max(manifest.units, usage.units),
            "cache_hits": usage.cache_hits,
            "cache_hit_rate": usage.cache_hits / usage.units if usage.units else None,
            # Counted in the store by every process of the run as it sent them (killed ones and
            # earlier resumes included); a run begun before that count existed keeps its own sum.
            "provider_calls": max(manifest.provider_calls + provider_calls, self.store.provider_calls(run_id)),
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "cost_usd": usage.cost_usd,
            "judge_cost_usd": usage.judge_cost_usd,
            "recorded_cost_usd": usage.recorded_cost_usd,
            "latency_p50_s": usage.latency_percentiles.get(0.5),
            "latency_p95_s": usage.latency_percentiles.get(0.95),
            "ended_at": time.time(),
            "status": status,
        })


class _LineProgress:
    """Progress as plain lines (a CI log has no terminal to redraw a bar on): every 10% or 10 s."""

    def __init__(self, name: str, total: int, completed: int, *, every_s: float = 10.0) -> None:
        self.name, self.total, self.completed, self.every_s = name, total, completed, every_s
        self._started = self._last = time.monotonic()
        self._last_tenth = completed * 10 // total if total else 0

    def start(self) -> None:
        self._line()

    def update(self, task: object, *, advance: int = 0, completed: int | None = None) -> None:
        self.completed = self.completed + advance if completed is None else completed
        tenth = self.completed * 10 // self.total if self.total else 10
        if tenth > self._last_tenth or time.monotonic() - self._last >= self.every_s:
            self._last_tenth = tenth
            self._line()

    def stop(self) -> None:
        self._line()

    def _line(self) -> None:
        self._last = time.monotonic()
        print(f"{self.name}: {self.completed}/{self.total} units, {self._last - self._started:.0f} s",
              file=sys.stderr, flush=True)


def _progress(enabled: bool | None, total: int, completed: int, name: str) -> tuple[Any, Any]:
    if enabled is False:
        return None, None
    if enabled is None and not sys.stderr.isatty():
        return _LineProgress(name, total, completed), None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(TextColumn(f"[bold]{name}[/]"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=Console(stderr=True), transient=False)
    task = progress.add_task(name, total=total, completed=completed)
    return progress, task


async def arun_suite(suite: str | Path | LoadedSuite, options: RunOptions | None = None,
                     **overrides: Any) -> RunResult:
    """Run a suite and return its results (async).

    Every unit result is committed to the run store as it completes; if the process dies,
    :func:`resume_run` finishes the run without repeating completed work.

    Args:
        suite: Path or name of a suite file in ``evalsets/``, or a loaded suite.
        options: How to run it (see :class:`llmops.runner.prepare.RunOptions`).
        **overrides: :class:`~llmops.runner.prepare.RunOptions` fields (``settings``, ``client``,
            ``store``, ``models``, ``repeat``, ``cache``, ``max_cost_usd``, ...), over ``options``.
    """
    return await prepare_run(suite, options, **overrides).aexecute()


def run_suite(suite: str | Path | LoadedSuite, options: RunOptions | None = None, *,
              workers: int | None = None, **overrides: Any) -> RunResult:
    """Run a suite (sync; safe inside a running event loop). See :func:`arun_suite`.

    Args:
        suite: Path or name of a suite, or a loaded suite.
        options: How to run it (see :class:`llmops.runner.prepare.RunOptions`).
        workers: Run the units in this many processes sharing the run store (see
            :func:`llmops.runner.parallel.execute_in_processes`); None or 1: this process only.
        **overrides: :class:`~llmops.runner.prepare.RunOptions` fields, over ``options``.
    """
    return prepare_run(suite, options, **overrides).execute(workers)


async def aresume_run(run_id: str, options: RunOptions | None = None, **overrides: Any) -> RunResult:
    """Finish an interrupted run: only the units without a stored result are executed.

    Args:
        run_id: The run (an id, a unique prefix, or ``latest``).
        options: Resources, budget, progress, callback and tracer; the plan is the run's own.
        **overrides: :class:`~llmops.runner.prepare.RunOptions` fields, over ``options``.

    Raises:
        UserError: when the run is unknown, or its prompts or cases changed since it started.
    """
    return await prepare_resume(run_id, options, **overrides).aexecute()


def resume_run(run_id: str, options: RunOptions | None = None, *, workers: int | None = None,
               **overrides: Any) -> RunResult:
    """Sync :func:`aresume_run`; ``workers`` as in :func:`run_suite`."""
    return prepare_resume(run_id, options, **overrides).execute(workers)
