"""What can be checked before any call, and what a run would cost: preflight and dry run.

One walk over a run's units (:func:`survey`) renders each case's prompt once, resolves each
model, and looks each request up in the response cache. :func:`preflight` turns what it finds
into one :class:`~llmops.errors.UserError` (exit 2) before anything is spent:

- a prompt that does not render for a case (missing or wrong input), naming the case;
- in ``read-only`` (replay) mode, a request that is not in the cache;
- for models that will be called: a model that LiteLLM cannot place (not an alias, not a
  ``provider/model`` string), or a provider key that is not set (skipped when the alias sets
  ``api_key``, or its own ``api_base`` for a provider other than ``openai``: a custom endpoint
  may need none, but the OpenAI SDK sends no request without a key).

Judge calls cannot be known before the answers exist: a judge call missing from a replay cache
is an ``error`` unit at run time.

:func:`dry_run` reports the same problems and, for the calls the cache cannot answer, two
estimates: the *bound* (what the budget reserves: see :mod:`llmops.llm.budget`) and a *typical*
cost (completion lengths seen in earlier runs of the suite; prompt tokens as characters / 4).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops.errors import LLMOpsError, UserError, did_you_mean

if TYPE_CHECKING:
    from llmops.evalsets.loader import LoadedSuite
    from llmops.llm.types import Message
    from llmops.runner.engine import Runner
    from llmops.runner.prepare import RunOptions

_SHOWN = 5  # problems listed by name; the rest are counted


@dataclass
class Survey:
    """What one walk over a run's units found.

    Attributes:
        units: Units walked.
        cached: Units the response cache answers.
        render_errors: ``case [prompt]: message`` of each case whose prompt did not render.
        render_failed_units: Units whose prompt did not render (no call would be made).
        misses: Units that would call a provider, as ``(model, resolved, case id, prompt)``.
        calls: Per (prompt, model): [calls, bound cost, prompt-token estimate, bound completion tokens].
        problems: Misconfigurations found (render errors, replay misses, models, keys).
    """

    units: int = 0
    cached: int = 0
    render_errors: list[str] = field(default_factory=list)
    render_failed_units: int = 0
    misses: list[tuple[str, str, str, str]] = field(default_factory=list)
    calls: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def survey(runner: Runner, done: set[str] | None = None, *, look_up_cache: bool = True,
           check_models: bool = True) -> Survey:
    """Walk the units of a run that have no result yet (renders once per case × prompt).

    Args:
        runner: The run's runner.
        done: Keys of units that already have a result.
        look_up_cache: Look every request up in the cache (needed for a replay, and to count).
        check_models: Check that models which will be called resolve and have their keys.
    """
    from llmops.llm.budget import output_token_bound, worst_case_cost
    from llmops.llm.cache import request_key
    from llmops.runner.engine import case_inputs

    client = runner.client
    out = Survey()
    rendered: dict[tuple[str, str], list[Message] | None] = {}
    cache = client.cache if client.cache is not None and client.cache_mode in ("read-write", "read-only") else None
    params_of = {ref: {**pv.call_params, **runner.suite.suite.params} for ref, pv in runner.prompts.items()}
    resolved_of: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}
    agent_cases = {c.id: bool(getattr(c, "tools", None)) for c in runner.suite.cases}
    for unit in runner.units():
        if done and unit.key in done:
            continue
        out.units += 1
        pv = runner.prompts[unit.prompt]
        rkey = (unit.case.id, unit.prompt)
        if rkey not in rendered:
            try:
                rendered[rkey] = pv.render(case_inputs(pv, unit.case))
            except LLMOpsError as err:
                rendered[rkey] = None
                out.render_errors.append(f"case {unit.case.id} [{unit.prompt}]: {err.message}")
        messages = rendered[rkey]
        if messages is None:
            out.render_failed_units += 1
            continue
        mkey = (unit.prompt, unit.model)
        if mkey not in resolved_of:
            resolved_of[mkey] = client.resolve(unit.model, params_of[unit.prompt])
        resolved, merged = resolved_of[mkey]
        # An agent unit's first request carries its tools: only the run itself knows its key.
        agent = bool(getattr(unit.case, "tools", None))
        if look_up_cache and cache is not None and not agent and cache.contains(
                request_key(resolved, messages, merged, runner.seed + unit.repeat, unit.repeat)):
            out.cached += 1
            continue
        out.misses.append((unit.model, resolved, unit.case.id, unit.prompt))
        row = out.calls.setdefault(mkey, [0, 0.0, 0, 0])
        row[0] += 1
        if look_up_cache:  # only a dry run prices the calls
            row[1] += worst_case_cost(resolved, messages, merged)
            row[2] += sum(len(m.content) if isinstance(m.content, str) else 0 for m in messages) // 4 \
                + 4 * len(messages)
            row[3] += output_token_bound(resolved, merged)
    if out.render_errors:
        out.problems.append(f"{len(out.render_errors)} case(s) whose prompt does not render: "
                            + "; ".join(out.render_errors[:_SHOWN])
                            + (" ..." if len(out.render_errors) > _SHOWN else ""))
    if out.misses and client.cache_mode == "read-only" and look_up_cache:
        out.misses = [m for m in out.misses if not agent_cases.get(m[2])]
    if out.misses and client.cache_mode == "read-only":
        shown = "; ".join(f"case {c} [{p} × {m}]" for m, _, c, p in out.misses[:_SHOWN])
        out.problems.append(f"replay mode (--cache read-only): {len(out.misses)} request(s) are not in the "
                            f"response cache: {shown}" + (" ..." if len(out.misses) > _SHOWN else "")
                            + " (record them with --cache read-write, or run with --cache off)")
    elif out.misses and check_models:
        out.problems.extend(_model_problems(runner, {(m, r) for m, r, _, _ in out.misses}))
    return out


def _model_problems(runner: Runner, models: set[tuple[str, str]]) -> list[str]:
    from llmops.llm.loader import load_litellm
    from llmops.llm.providers import OUR_PROVIDERS

    problems: list[str] = []
    for model, resolved in sorted(models):
        if resolved.split("/", 1)[0] in OUR_PROVIDERS:
            continue
        params = runner.client.resolve(model)[1]
        litellm = load_litellm()
        try:
            provider = litellm.get_llm_provider(resolved, api_base=params.get("api_base"))[1]
        except Exception:  # litellm raises its own BadRequestError for a model it cannot place
            known = sorted(runner.settings.models)
            hint = did_you_mean(model, known)
            problems.append(f"unknown model '{model}': not an alias in [tool.llmops.models] and not a LiteLLM "
                            "'provider/model' string" + (f" ({hint})" if hint else ""))
            continue
        if params.get("api_key"):
            continue
        # A custom endpoint may need no key, but the OpenAI SDK refuses to send any request
        # without one, so an `openai/` alias with its own api_base still needs a key (any value
        # for a server that takes none); without this check every call errors at run time.
        if params.get("api_base") and provider != "openai":
            continue
        try:
            missing = litellm.validate_environment(model=resolved).get("missing_keys") or []
        except Exception:
            missing = []
        if missing:
            hint = ("(or api_key in the alias; any value, e.g. \"none\", for a server that takes no key)"
                    if params.get("api_base") else "(or api_key in the alias)")
            problems.append(f"model '{model}' ({resolved}) needs {' or '.join(missing)}: set it in the environment "
                            + hint)
    return problems


def preflight(runner: Runner, done: set[str] | None = None) -> None:
    """Fail before any call when the run is misconfigured (see the module docstring).

    Raises:
        UserError: naming every problem found (exit code 2).
    """
    found = survey(runner, done, look_up_cache=runner.client.cache_mode == "read-only")
    if found.problems:
        raise UserError("the run cannot start: " + " | ".join(found.problems), key=runner.suite.name,
                        hint="fix these, then run again (nothing was called or spent)")


@dataclass(frozen=True)
class DryRun:
    """What a run would do, without calling anything.

    Attributes:
        units: Units of the run.
        calls: Provider calls it would make (units whose prompt renders and that the cache cannot answer).
        cached: Units the response cache answers ($0 now).
        render_errors: Units whose prompt does not render (no call; each would be an error).
        estimated_prompt_tokens: Prompt tokens of the calls (characters / 4).
        bound_completion_tokens: Completion tokens if every call reached its bound (``max_tokens``).
        bound_cost_usd: The most the calls can cost: what ``--max-cost-usd`` reserves for them.
        typical_cost_usd: The calls priced with the completion lengths of earlier runs of this
            suite (the bound for calls without history); None without any history.
        typical_basis: Which calls ``typical_cost_usd`` prices from history.
        by_model: Per model: ``calls``, ``bound_cost_usd`` and ``typical_cost_usd``.
        problems: Misconfigurations a real run would stop at (exit 2).
    """

    units: int
    calls: int
    cached: int
    render_errors: int
    estimated_prompt_tokens: int
    bound_completion_tokens: int
    bound_cost_usd: float
    typical_cost_usd: float | None
    typical_basis: str
    by_model: dict[str, dict[str, float]]
    problems: list[str]

    @property
    def estimated_cost_usd(self) -> float:
        """The bound (kept for callers of earlier versions)."""
        return self.bound_cost_usd

    @property
    def estimated_completion_tokens(self) -> int:
        """The bound's completion tokens (kept for callers of earlier versions)."""
        return self.bound_completion_tokens

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


def dry_run(suite: str | Path | LoadedSuite, options: RunOptions | None = None, **overrides: Any) -> DryRun:
    """Count the calls a run would make, check what preflight checks, and estimate the cost.

    Args:
        suite: Path or name of a suite, or a loaded suite.
        options: How the run would be run (see :class:`llmops.runner.prepare.RunOptions`).
        **overrides: :class:`~llmops.runner.prepare.RunOptions` fields, over ``options``.
    """
    from llmops.llm.pricing import cost_of
    from llmops.llm.types import Usage
    from llmops.runner.engine import Runner
    from llmops.runner.prepare import RunOptions, load, resources

    opts = RunOptions.of(options, overrides)
    settings, client, store = resources(opts)
    loaded = load(suite, settings)
    runner = Runner(loaded, settings=settings, client=client, store=store, models=opts.models,
                    prompts=opts.prompts, repeat=opts.repeat, seed=opts.seed, shard=opts.shard, progress=False,
                    only=opts.only)
    found = survey(runner)
    history = store.completion_token_means(loaded.name)
    by_model: dict[str, dict[str, float]] = {}
    bound = typical = 0.0
    p_tok = c_tok = 0
    with_history = 0
    for (prompt, model), (calls, bound_cost, prompt_tokens, bound_tokens) in found.calls.items():
        row = by_model.setdefault(model, {"calls": 0, "bound_cost_usd": 0.0, "typical_cost_usd": 0.0})
        row["calls"] += calls
        row["bound_cost_usd"] += bound_cost
        bound += bound_cost
        p_tok += int(prompt_tokens)
        c_tok += int(bound_tokens)
        seen = history.get((prompt, model))
        if seen is None:
            row["typical_cost_usd"] += bound_cost
            typical += bound_cost
            continue
        with_history += int(calls)
        resolved, merged = client.resolve(model, {**runner.prompts[prompt].call_params, **loaded.suite.params})
        cost = cost_of(resolved, Usage(int(prompt_tokens), round(seen * calls)), merged)
        row["typical_cost_usd"] += cost
        typical += cost
    total_calls = len(found.misses)
    basis = (f"completion lengths of earlier runs of {loaded.name} for {with_history} of {total_calls} call(s)"
             + ("; the bound for the rest" if with_history < total_calls else "")) if with_history else \
        "no earlier run of this suite: no typical estimate"
    return DryRun(units=found.units, calls=total_calls, cached=found.cached, render_errors=found.render_failed_units,
                  estimated_prompt_tokens=p_tok, bound_completion_tokens=c_tok, bound_cost_usd=bound,
                  typical_cost_usd=typical if with_history else None, typical_basis=basis, by_model=by_model,
                  problems=found.problems)
