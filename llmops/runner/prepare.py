"""One way to prepare a run: :class:`RunOptions` in, a :class:`PreparedRun` out.

Every entry point (``run_suite``, ``resume_run``, :func:`llmops.gate.run_and_gate`, the pytest
plugin) builds its run here, so a check added to preparation (the response cache's integrity,
a prompt that cannot load) applies to all of them. A prepared run is registered in the run store
and has run no unit yet; it executes in this process or in worker processes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops._async import run_sync
from llmops.config import Settings, load_settings
from llmops.errors import UserError
from llmops.evalsets.loader import LoadedSuite, load_suite

if TYPE_CHECKING:
    from llmops.llm.client import LLMClient
    from llmops.runner.engine import Runner
    from llmops.runner.results import Manifest, RunResult, UnitResult
    from llmops.runner.store import RunStore
    from llmops.tracing.tracer import Tracer


@dataclass(frozen=True)
class RunOptions:
    """How to run a suite: the one declaration of every run option.

    Every field defaults to "decide from the suite, the run's plan or the settings".

    Attributes:
        settings: Configuration (default: loaded from the project, or the client's).
        client: LLM client (default: one built from settings); judge calls use it too.
        store: Run store (default: ``settings.store_path``).
        models: Models to run instead of the suite's.
        prompts: Prompt references to run instead of the suite's.
        repeat: Repeats per case instead of the suite's.
        concurrency: Max in-flight calls per model.
        cache: Cache mode (``off``, ``read-write``, ``read-only``, ``refresh``).
        seed: Base seed (default: the suite's, else the settings').
        max_cost_usd: Budget in USD: no call is sent that could cross it.
        shard: ``I/N``: one deterministic slice of the cases.
        run_id: Id of the new run (default: a new one).
        progress: Show a progress bar (default: when stderr is a terminal).
        on_result: Called with each unit result as it is stored.
        tracer: Trace each unit (e.g. ``llmops.tracing.get_tracer(settings)``); None: untraced.
        only: Run just these (case id, prompt ref, model) combinations (all their repeats).
        retry_errors: Resume only: run the units whose result is an error again (their results
            are replaced), e.g. after a provider outage.
    """

    settings: Settings | None = None
    client: LLMClient | None = None
    store: RunStore | None = None
    models: Sequence[str] | None = None
    prompts: Sequence[str] | None = None
    repeat: int | None = None
    concurrency: int | None = None
    cache: str | None = None
    seed: int | None = None
    max_cost_usd: float | None = None
    shard: str | None = None
    run_id: str | None = None
    progress: bool | None = None
    on_result: Callable[[UnitResult], None] | None = None
    tracer: Tracer | None = None
    only: set[tuple[str, str, str]] | None = None
    retry_errors: bool = False

    def with_(self, **overrides: Any) -> RunOptions:
        """A copy with some fields replaced.

        Raises:
            TypeError: when an override is not a field of :class:`RunOptions`.
        """
        return dataclasses.replace(self, **overrides) if overrides else self

    @classmethod
    def of(cls, options: RunOptions | None, overrides: dict[str, Any]) -> RunOptions:
        """``options`` (or the defaults) with keyword ``overrides`` applied."""
        return (options or cls()).with_(**overrides)


#: Options that a resume takes from the run's own plan; giving one is a usage error.
PLAN_FIELDS = ("models", "prompts", "repeat", "concurrency", "cache", "seed", "shard", "run_id", "only")


@dataclass
class PreparedRun:
    """A run registered in the run store, ready to execute (no unit has run yet in this call).

    Attributes:
        runner: The runner (its suite, client, store and evaluators, all checked).
        run_id: The run's id.
        manifest: Its manifest as registered.
        done: Keys of units that already have a result (a resume).
    """

    runner: Runner
    run_id: str
    manifest: Manifest
    done: set[str]

    @property
    def suite(self) -> LoadedSuite:
        """The loaded suite."""
        return self.runner.suite

    @property
    def settings(self) -> Settings:
        """The run's settings."""
        return self.runner.settings

    async def aexecute(self) -> RunResult:
        """Run every unit without a result, in this process."""
        return await self.runner.execute(self.run_id, self.manifest, self.done)

    def execute(self, workers: int | None = None) -> RunResult:
        """Run every unit without a result (sync; safe inside a running event loop).

        Args:
            workers: Run the units in this many processes sharing the run store (see
                :func:`llmops.runner.parallel.execute_in_processes`); None or 1: this process only.
        """
        if workers is not None and workers > 1:
            from llmops.runner.parallel import execute_in_processes, forking_possible

            if forking_possible():
                return execute_in_processes(self.runner, self.run_id, self.manifest, self.done, workers)
        return run_sync(self.aexecute())


def suite_path(suite: str | Path, settings: Settings) -> Path:
    """The file of a suite given as a path or a name in ``evalsets/``.

    Relative paths are tried from the working directory, then the project root, then the
    evalsets folder (so notebooks in a subfolder can say ``evalsets/x.yaml``); a missing file is
    returned as given for :func:`llmops.evalsets.loader.load_suite` to report.
    """
    path = Path(suite)
    if path.exists():
        return path
    for candidate in (settings.root / path, settings.evalsets_path / path, settings.evalsets_path / f"{suite}.yaml",
                      settings.evalsets_path / f"{suite}.yml"):
        if candidate.exists():
            return candidate
    return path


def resources(options: RunOptions, *, cache: str | None = None,
              concurrency: int | None = None) -> tuple[Settings, LLMClient, RunStore]:
    """The settings, client and store of a run (built from settings when not given).

    Args:
        options: The run options.
        cache: Cache mode to apply (default: ``options.cache``).
        concurrency: Concurrency to apply (default: ``options.concurrency``).
    """
    from llmops.llm.client import LLMClient
    from llmops.runner.store import RunStore

    cache = cache if cache is not None else options.cache
    concurrency = concurrency if concurrency is not None else options.concurrency
    client = options.client
    settings = options.settings or (client.settings if client else load_settings())
    if client is None:
        client = LLMClient(settings, cache_mode=cache, concurrency=concurrency)  # type: ignore[arg-type]
    else:
        # Only a different cache mode needs another client: the caller's own (a subclass, its
        # retry policy, observers) is kept otherwise, e.g. when resume re-applies the plan's mode.
        if cache is not None and cache != client.cache_mode:
            client = LLMClient(client.settings, cache=client.cache, cache_mode=cache,  # type: ignore[arg-type]
                               retry=client.retry, concurrency=concurrency or client.concurrency,
                               timeout_s=client.timeout_s, observers=client.observers)
        elif concurrency is not None:
            client.concurrency = concurrency
    store = options.store or RunStore(settings.path(settings.store_path))
    return settings, client, store


def load(suite: str | Path | LoadedSuite, settings: Settings) -> LoadedSuite:
    """A suite given as a path, a name in ``evalsets/`` or already loaded.

    A ``cases_from:`` suite's dataset is fetched from Langfuse first when it can be (its snapshot
    is rewritten if the items changed); otherwise its committed snapshot is read.
    """
    if isinstance(suite, LoadedSuite):
        return suite

    def refresh(spec: Any, path: Path) -> tuple[str, str | None]:
        from llmops.tracing.datasets import refresh_snapshot

        return refresh_snapshot(settings, spec, path)

    return load_suite(suite_path(suite, settings), refresh=refresh)


def prepare_run(suite: str | Path | LoadedSuite, options: RunOptions | None = None,
                **overrides: Any) -> PreparedRun:
    """Validate everything and register a new run (no unit runs yet).

    Args:
        suite: Path or name of a suite file in ``evalsets/``, or a loaded suite.
        options: How to run it.
        **overrides: :class:`RunOptions` fields, over ``options``.

    Raises:
        UserError: when the suite, a prompt, a model name or an option is wrong, or the response
            cache is damaged.
    """
    from llmops.runner.engine import Runner, new_run_id
    from llmops.runner.preflight import preflight

    opts = RunOptions.of(options, overrides)
    settings, client, store = resources(opts)
    loaded = load(suite, settings)
    runner = Runner(loaded, settings=settings, client=client, store=store, models=opts.models,
                    prompts=opts.prompts, repeat=opts.repeat, seed=opts.seed, max_cost_usd=opts.max_cost_usd,
                    shard=opts.shard, progress=opts.progress, on_result=opts.on_result, tracer=opts.tracer,
                    only=opts.only)
    if client.cache is not None:
        client.cache.check()  # a damaged cache is one clear error up front, not an error per unit
    preflight(runner)  # misconfiguration is exit 2 before anything is spent, not an error per unit
    rid = opts.run_id or new_run_id()
    manifest = runner.new_manifest(rid)
    store.create_run(manifest, runner.plan())
    return PreparedRun(runner=runner, run_id=rid, manifest=manifest, done=set())


def prepare_resume(run_id: str, options: RunOptions | None = None, **overrides: Any) -> PreparedRun:
    """Check that an interrupted run can be resumed; return it ready to finish.

    The run's plan (models, prompts, repeats, seed, shard, cache mode, concurrency) is the
    run's own; only the budget, progress, callback, tracer and resources may be given.

    Args:
        run_id: The run (an id, a unique prefix, or ``latest``).
        options: Resources and budget.
        **overrides: :class:`RunOptions` fields, over ``options``.

    Raises:
        UserError: when the run is unknown, its prompts or cases changed since it started, or
            an option of the plan is given.
    """
    from llmops.runner.engine import Runner
    from llmops.runner.preflight import preflight
    from llmops.runner.store import RunStore

    opts = RunOptions.of(options, overrides)
    fixed = [f for f in PLAN_FIELDS if getattr(opts, f) is not None]
    if fixed:
        raise UserError(f"a resumed run keeps its own plan: {', '.join(fixed)} cannot be given with --resume",
                        key=fixed[0], hint="start a new run to change them")
    settings = opts.settings or (opts.client.settings if opts.client else load_settings())
    store = opts.store or RunStore(settings.path(settings.store_path))
    rid = store.resolve_id(run_id)
    plan = store.plan(rid)
    manifest = store.manifest(rid)
    settings, client, store = resources(opts.with_(settings=settings, store=store), cache=plan.cache,
                                        concurrency=plan.concurrency)
    loaded = load_suite(plan.suite_path)
    if loaded.dataset_hash != manifest.dataset_hash:
        raise UserError(f"the cases of {plan.suite_path} changed since run {rid} started",
                        key=rid, hint="start a new run instead of resuming")
    runner = Runner(loaded, settings=settings, client=client, store=store, models=plan.models,
                    prompts=plan.prompts, repeat=plan.repeat, seed=plan.seed,
                    max_cost_usd=opts.max_cost_usd if opts.max_cost_usd is not None else plan.max_cost_usd,
                    shard=plan.shard, progress=opts.progress, on_result=opts.on_result, tracer=opts.tracer)
    for ref, digest in manifest.prompts.items():
        if runner.prompts[ref].content_hash != digest:
            raise UserError(f"prompt {ref} changed since run {rid} started", key=ref,
                            hint="start a new run instead of resuming")
    if client.cache is not None:
        client.cache.check()
    if opts.retry_errors:  # only once every check passed: a refused resume deletes nothing
        store.forget_errors(rid)
    done = store.done_units(rid)
    preflight(runner, done)
    return PreparedRun(runner=runner, run_id=rid, manifest=manifest, done=done)
