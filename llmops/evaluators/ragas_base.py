"""Shared machinery of the Ragas adapters: lazy import, the judge bridge, failures as data.

- ragas is imported on first use (~2.5 s, ~220 MB), with telemetry off, never at module import.
- Judge calls: ragas's ``llm_factory(provider="litellm")`` is given :func:`judge_completion_fn`,
  a stand-in for ``litellm.acompletion`` that sends each request through our
  :class:`~llmops.llm.client.LLMClient` (cache, retries, concurrency limit, tracing, cost).
- :class:`RagasEvaluator` runs one metric on one sample and maps NaN, unparseable judge output,
  truncation, timeouts and missing inputs to ``unmeasured`` with a reason; provider setup
  errors (auth, unknown model, replay-cache miss) to ``error``.

The metrics themselves are in :mod:`llmops.evaluators.ragas_adapters`.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import importlib.metadata
import importlib.util
import json
import logging
import math
import re
import threading
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from llmops.config import apply_process_defaults
from llmops.errors import EvalsetError, LLMOpsError, ProviderTimeoutError
from llmops.evaluators.base import EvalContext, Evaluator, Sample, Score
from llmops.evaluators.ragas_embeddings import EmbeddingUnavailable

if TYPE_CHECKING:
    from llmops.llm.client import LLMClient
    from llmops.llm.types import Completion

RAGAS_HINT = "pip install 'llmops[ragas]'"
# Input keys tried, in order, for the user's question when no ``question_key`` is given.
QUESTION_KEYS = ("question", "query", "user_input", "input")
# Shown in reasons and details; long judge outputs are cut to this many characters.
SNIPPET = 300

# ---- ragas, imported once and lazily ----------------------------------------------------------
_import_lock = threading.Lock()
_ragas_loaded = False
# True while one of our evaluators runs a metric: instructor then logs its parse failures at
# ERROR level, which we already report as an ``unmeasured`` score with a reason.
_inside_metric: contextvars.ContextVar[bool] = contextvars.ContextVar("llmops_ragas_metric", default=False)
_INSTRUCTOR_LOGGERS = ("instructor", "instructor.v2", "instructor.v2.retry")


class _QuietWhileScoring(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not _inside_metric.get()


def load_ragas() -> None:
    """Import ragas once, with telemetry off (it reads RAGAS_DO_NOT_TRACK once and caches it)."""
    global _ragas_loaded
    with _import_lock:
        if _ragas_loaded:
            return
        apply_process_defaults()
        import ragas.metrics.collections  # noqa: F401  (the import is the point)

        quiet = _QuietWhileScoring()
        for name in _INSTRUCTOR_LOGGERS:
            logging.getLogger(name).addFilter(quiet)
        _ragas_loaded = True


@functools.cache
def ragas_version() -> str:
    """The installed ragas version (recorded in score details: scores may move between versions)."""
    try:
        return importlib.metadata.version("ragas")
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


# ---- what one score() spent and heard ----------------------------------------------------------
class Unmeasured(Exception):
    """A metric-specific "could not decide", raised inside a measurement."""


@dataclass
class Ledger:
    """Judge calls, cost and the judge's answers during one score (for reasons and details).

    Attributes:
        model: The judge model, once a judge is set up.
        calls: Judge requests sent to our client (cache hits included).
        cache_hits: Of those, answered by the response cache.
        cost_usd: Judge (and embedding) cost.
        outputs: The judge's raw answers, in order.
        steps: (ragas output model name, parsed output) of each completed step.
        pending: The output model of the step in progress (names the step that failed).
        max_tokens: The judge's ``max_tokens`` on the last request.
        embeddings: Description of the embedding model used, if any.
        repeats: Identical requests seen so far, by fingerprint (their repeat index).
    """

    model: str | None = None
    calls: int = 0
    cache_hits: int = 0
    cost_usd: float = 0.0
    outputs: list[str] = field(default_factory=list)
    steps: list[tuple[str, Any]] = field(default_factory=list)
    pending: str | None = None
    max_tokens: Any = None
    embeddings: str | None = None
    repeats: Counter[str] = field(default_factory=Counter)

    def record(self, completion: Completion) -> None:
        """Account for one judge answer."""
        self.calls += 1
        self.cache_hits += int(completion.cached)
        self.cost_usd += completion.cost_usd
        self.outputs.append(completion.text)

    def parsed(self, step: str) -> list[Any]:
        """The parsed ragas outputs of one step type, in call order."""
        return [out for name, out in self.steps if name == step]

    def details(self) -> dict[str, Any]:
        """JSON-ready details for the score: ragas version, judge accounting, parsed steps."""
        data: dict[str, Any] = {"ragas_version": ragas_version()}
        if self.model is not None:
            data["judge"] = {"model": self.model, "calls": self.calls, "cache_hits": self.cache_hits,
                             "cost_usd": self.cost_usd}
        if self.embeddings is not None:
            data["embeddings"] = self.embeddings
        if self.steps:
            data["steps"] = [{"step": name, "output": out.model_dump()} for name, out in self.steps]
        return data


# ---- the judge: ragas's litellm path, answered by our client ------------------------------------
_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)
# Streaming would bypass our cache (and we return one whole completion).
_NOT_FORWARDED = frozenset({"stream"})


def _unwrap_json(text: str) -> str:
    """The JSON in a judge answer that wrapped it in a code fence or a sentence.

    instructor's JSON mode parses the whole text strictly; small judges often add a fence or
    "Here is the JSON:". The unwrapped text is still validated against ragas's schema.
    """
    stripped = text.strip()
    try:
        json.loads(stripped)
        return stripped
    except ValueError:
        pass
    fence = _FENCE.match(stripped)
    if fence:
        return fence.group(1)
    start, end = stripped.find("{"), stripped.rfind("}")
    if 0 <= start < end:
        candidate = stripped[start:end + 1]
        try:
            json.loads(candidate)
            return candidate
        except ValueError:
            pass
    return text


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def _chat_completion(completion: Completion) -> Any:
    """Our Completion as the OpenAI-style object instructor's litellm handler reads."""
    from openai.types.chat import ChatCompletion

    finish = completion.finish_reason if completion.finish_reason in ("stop", "length") else "stop"
    usage = completion.usage
    return ChatCompletion.model_validate({
        "id": completion.cache_key or "llmops", "object": "chat.completion", "created": 0,
        "model": completion.resolved_model,
        "choices": [{"index": 0, "finish_reason": finish,
                     "message": {"role": "assistant", "content": _unwrap_json(completion.text)}}],
        "usage": {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
                  "total_tokens": usage.total_tokens},
    })


def judge_completion_fn(client: LLMClient, ledger: Ledger, seed: int,
                        metadata: dict[str, Any]) -> Callable[..., Awaitable[Any]]:
    """A stand-in for ``litellm.acompletion`` that sends ragas's judge calls through our client.

    ragas's ``llm_factory(provider="litellm")`` wraps the function with instructor, which calls it
    with ``model``, ``messages``, ``response_format`` and sampling params and reads
    ``choices[0].message.content``, ``finish_reason`` and ``usage`` from the result.

    Identical requests within one score (response relevancy asks ``strictness`` times) get
    increasing ``repeat`` indices, so each is an independent sample rather than a cache hit.
    """

    async def acompletion(*, model: str, messages: list[dict[str, Any]], **kwargs: Any) -> Any:
        params = {k: v for k, v in kwargs.items() if v is not None and k not in _NOT_FORWARDED}
        msgs = [{"role": str(m.get("role") or "user"), "content": _content_text(m.get("content"))}
                for m in messages]
        fingerprint = json.dumps([model, msgs, params], sort_keys=True, default=str)
        repeat = ledger.repeats[fingerprint]
        ledger.repeats[fingerprint] += 1
        ledger.max_tokens = params.get("max_tokens")
        completion = await client.acomplete(msgs, model, params, seed=seed, repeat=repeat,
                                            metadata={**metadata, "ragas_step": ledger.pending})
        ledger.record(completion)
        return _chat_completion(completion)

    return acompletion


def _record_steps(llm: Any, ledger: Ledger) -> None:
    """Keep each parsed ragas step (statements, verdicts, ...) for reasons and details."""
    inner = llm.agenerate

    async def agenerate(prompt: str, response_model: type[Any]) -> Any:
        ledger.pending = response_model.__name__
        result = await inner(prompt, response_model)
        ledger.steps.append((response_model.__name__, result))
        ledger.pending = None
        return result

    llm.agenerate = agenerate


# ---- failures -> unmeasured ---------------------------------------------------------------------
def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


_PARSE_ERRORS = frozenset({"InstructorRetryException", "ValidationError", "JSONDecodeError",
                           "ResponseParsingError"})


def _parse_problem(exc: BaseException) -> str:
    """One line about a parse failure: pydantic's first error with its location, else the message."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            first = errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ())) or "answer"
            return f"{where}: {first.get('msg', '')}"[:SNIPPET]
        except (IndexError, TypeError, AttributeError):
            pass
    text = str(exc).strip().splitlines()
    return text[0][:SNIPPET] if text else type(exc).__name__


# ---- evaluators ---------------------------------------------------------------------------------
class RagasEvaluator(Evaluator):
    """Shared flow: check inputs, import ragas, measure, map failures to ``unmeasured``.

    Subclasses set ``metric`` (the ragas class, for details), ``requires`` (import names that
    must be installed) and implement :meth:`_missing` and :meth:`_measure`.
    """

    version: ClassVar[str] = "1"
    metric: str = ""
    requires: ClassVar[tuple[str, ...]] = ("ragas",)

    def __init__(self, *, timeout_s: float | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        missing = [m for m in self.requires if importlib.util.find_spec(m) is None]
        if missing:
            raise EvalsetError(f"evaluator '{self.kind}' needs {', '.join(missing)}, which is not installed",
                               key=self.kind, hint=RAGAS_HINT)
        if timeout_s is not None and timeout_s <= 0:
            raise EvalsetError(f"{self.kind}: timeout_s must be positive, got {timeout_s}", key="timeout_s")
        self.timeout_s = timeout_s

    def _missing(self, sample: Sample) -> str | None:
        """Why the sample cannot be scored (missing contexts, reference, ...), or None."""
        return None

    async def _measure(self, sample: Sample, ctx: EvalContext, ledger: Ledger) -> tuple[float, str]:
        """Run the ragas metric; return (value, reason). May raise :class:`Unmeasured`."""
        raise NotImplementedError

    async def score(self, sample: Sample, ctx: EvalContext) -> Score:
        """Score one sample; see the module docstring for what becomes ``unmeasured``."""
        problem = self._missing(sample)
        if problem is not None:
            return self.unmeasured(problem, details={"metric": self.metric})
        # The first import takes seconds: keep the event loop serving other cases meanwhile.
        await asyncio.to_thread(load_ragas)
        ledger = Ledger()
        token = _inside_metric.set(True)
        try:
            measuring = self._measure(sample, ctx, ledger)
            value, reason = await (asyncio.wait_for(measuring, self.timeout_s) if self.timeout_s
                                   else measuring)
        except Exception as exc:
            return self._failure(exc, ledger)
        finally:
            _inside_metric.reset(token)
        details = {"metric": self.metric, **ledger.details()}
        if value is None or not math.isfinite(value):
            return self.unmeasured(reason or f"ragas {self.metric} returned {value}", details=details,
                                   cost_usd=ledger.cost_usd)
        return self.measured(value, reason, details=details, cost_usd=ledger.cost_usd)

    def _failure(self, exc: Exception, ledger: Ledger) -> Score:
        """Map a failure to ``unmeasured`` (could not decide) or ``error`` (misconfiguration)."""
        details = {"metric": self.metric, **ledger.details()}
        if isinstance(exc, Unmeasured | EmbeddingUnavailable):
            return self.unmeasured(str(exc), details=details, cost_usd=ledger.cost_usd)
        if isinstance(exc, TimeoutError) and not isinstance(exc, LLMOpsError):
            within = f"within {self.timeout_s:g} s" if self.timeout_s else f"({exc or 'timeout'})"
            return self.unmeasured(f"ragas {self.metric} did not finish {within}", details=details,
                                   cost_usd=ledger.cost_usd)
        chain = _chain(exc)
        ours = next((e for e in chain if isinstance(e, LLMOpsError)), None)
        if isinstance(ours, ProviderTimeoutError):
            return self.unmeasured(f"judge call timed out: {ours.message}", details=details,
                                   cost_usd=ledger.cost_usd)
        if ours is not None:
            # Auth, unknown model, replay-cache miss: a setup problem that must be loud, not skipped.
            # Built by hand (not self.error) to keep the cost of the judge calls that did succeed.
            return Score(name=self.name, value=None, status="error", reason=f"judge call failed: {ours}",
                         threshold=self.threshold, evaluator=self.kind, version=self.version,
                         details=details, cost_usd=ledger.cost_usd)
        names = {type(e).__name__ for e in chain}
        step = ledger.pending or "JSON"
        last = ledger.outputs[-1][:SNIPPET] if ledger.outputs else ""
        details["judge_outputs"] = [o[:SNIPPET] for o in ledger.outputs]
        if "IncompleteOutputException" in names:
            return self.unmeasured(
                f"judge output for {step} was cut off at max_tokens={ledger.max_tokens} before its JSON "
                f"ended (raise judge_params.max_tokens if the answer was legitimately long); "
                f"last output: {last!r}", details=details, cost_usd=ledger.cost_usd)
        if names & _PARSE_ERRORS:
            attempts = getattr(exc, "n_attempts", None) or ledger.calls
            cause = next((e for e in chain if type(e).__name__ != "InstructorRetryException"), exc)
            return self.unmeasured(
                f"judge output is not valid {step} JSON after {attempts} attempt(s) "
                f"({_parse_problem(cause)}); last output: {last!r}", details=details, cost_usd=ledger.cost_usd)
        raise exc


class RagasLLMEvaluator(RagasEvaluator):
    """A ragas metric that asks a judge model.

    Args:
        judge_model: Model for judge calls (default: the context's ``judge_model``, then the
            project's ``judge_model`` setting).
        judge_params: Extra call params (``max_tokens``, ``temperature``, ...) over ragas's.
        parse_retries: How often instructor re-asks a judge whose answer does not validate.
        question_key: The input holding the user's question (default: the first of
            ``question``, ``query``, ``user_input``, ``input``, else the last user message).
        timeout_s: Give up on the whole metric after this long (``unmeasured``).
    """

    needs_llm: ClassVar[bool] = True

    def __init__(self, *, judge_model: str | None = None, judge_params: dict[str, Any] | None = None,
                 parse_retries: int = 1, question_key: str | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        if not isinstance(parse_retries, int) or parse_retries < 0:
            raise EvalsetError(f"{self.kind}: parse_retries must be an integer >= 0", key="parse_retries")
        self.judge_model = judge_model
        self.judge_params = dict(judge_params or {})
        self.parse_retries = parse_retries
        self.question_key = question_key

    def _question(self, sample: Sample) -> str | None:
        keys = (self.question_key,) if self.question_key else QUESTION_KEYS
        for key in keys:
            value = sample.inputs.get(key)
            if value is not None and str(value).strip():
                return str(value)
        if self.question_key is None:
            users = [m.content for m in sample.messages if m.role == "user" and m.content.strip()]
            if users:
                return users[-1]
        return None

    def _ask(self, sample: Sample) -> str:
        """The question, once :meth:`_missing` has checked there is one."""
        question = self._question(sample)
        if question is None:
            raise Unmeasured(self._no_question())
        return question

    def _no_question(self) -> str:
        if self.question_key:
            return f"no question: the case has no input '{self.question_key}' (question_key)"
        return ("no question: the case has none of the inputs " + ", ".join(QUESTION_KEYS)
                + " and no user message; set question_key")

    @staticmethod
    def _client(ctx: EvalContext) -> LLMClient:
        if ctx.client is not None:
            return ctx.client
        from llmops.api import default_client

        return default_client()

    def _llm(self, ctx: EvalContext, ledger: Ledger) -> Any:
        """A ragas LLM whose calls go through our client (cache, retries, tracing, cost)."""
        from ragas.llms import llm_factory

        client = self._client(ctx)
        model = self.judge_model or ctx.judge_model or client.settings.judge_model
        ledger.model = model
        metadata = {**ctx.metadata, "purpose": "judge", "evaluator": self.name, "ragas_metric": self.metric}
        # temperature 0: judge answers are cached by content, so determinism is what we want.
        # top_p=None: some providers reject temperature and top_p together (ragas sets both).
        # max_retries is instructor's re-ask count, consumed by instructor, not sent to the model.
        params: dict[str, Any] = {"temperature": 0.0, "top_p": None, "max_retries": self.parse_retries,
                                  **self.judge_params}
        llm = llm_factory(model, provider="litellm",
                          client=judge_completion_fn(client, ledger, ctx.seed, metadata), **params)
        _record_steps(llm, ledger)
        return llm


def reference_of(sample: Sample) -> str:
    """The expected answer, once :meth:`_missing` has checked there is one."""
    if not (sample.expected or "").strip():
        raise Unmeasured("no reference: the case has no expected answer")
    return sample.expected or ""


def retrieved_of(sample: Sample) -> list[str]:
    """The case's non-blank retrieved contexts."""
    return [c for c in sample.contexts if c and c.strip()]


NO_CONTEXTS = "no retrieved contexts: {kind} needs the case's contexts"
NO_EXPECTED = "no reference: {kind} needs the case's expected answer"
EMPTY_OUTPUT = "empty output: nothing for the judge to assess"
