"""LiteLLM, imported once and lazily, and the patches that trim its per-call work for our calls.

The only module that imports litellm. Importing it registers our ``local/`` and ``fake/``
providers (:mod:`llmops.llm.providers`) and installs the lean path (see :class:`Lean`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import sys
import threading
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

from llmops.config import apply_process_defaults

_T = TypeVar("_T")

_litellm_lock = threading.Lock()
_litellm_module: Any = None


def load_litellm() -> Any:
    """The litellm module, imported on first use with our providers registered and the lean path on."""
    global _litellm_module
    with _litellm_lock:
        if _litellm_module is None:
            from llmops._runtime import after_heavy_import, before_heavy_import

            apply_process_defaults()
            paused = before_heavy_import()
            try:
                import litellm

                litellm.telemetry = False
                litellm.suppress_debug_info = True
                from llmops.llm.providers import register_providers

                register_providers(litellm)
                _install_lean_path(litellm)
            finally:
                after_heavy_import(paused)
            _litellm_module = litellm
    return _litellm_module


# litellm's per-call work we already do ourselves.
# On every call litellm prices the response with its full cost calculator and builds a standard
# logging payload for its success callbacks (their share of a call's CPU: bench/README.md). We price with
# our cached lookup (cost_of) and trace through our own observers, so while none of litellm's
# own callbacks or budgets are configured, our calls skip both. Registering any litellm callback
# (or litellm.max_budget) brings the full path back, call by call.
_lean_call: contextvars.ContextVar[bool] = contextvars.ContextVar("llmops_lean_call", default=False)
_internal_call: contextvars.ContextVar[bool] | None = None
CALLBACK_LISTS = ("callbacks", "success_callback", "failure_callback", "_async_success_callback",
                   "_async_failure_callback", "input_callback", "service_callback")


def _install_lean_path(litellm: Any) -> None:
    """Let calls made under :class:`Lean` skip litellm's cost calculation (no-op if its internals moved)."""
    global _internal_call
    try:
        from litellm._internal_context import is_internal_call
        from litellm.litellm_core_utils.litellm_logging import Logging
    except ImportError:  # another litellm layout: keep its full path
        return
    original = getattr(Logging, "response_cost_calculator", None)
    if original is None or getattr(original, "_llmops_lean", False):
        _internal_call = is_internal_call
        return

    @functools.wraps(original)
    def response_cost_calculator(self: Any, *args: Any, **kwargs: Any) -> Any:
        if _lean_call.get():
            return None  # priced by cost_of from the usage, with our cached price lookup
        return original(self, *args, **kwargs)

    response_cost_calculator._llmops_lean = True  # type: ignore[attr-defined]
    Logging.response_cost_calculator = response_cost_calculator  # type: ignore[method-assign]
    _internal_call = is_internal_call


def _litellm_needs_full_path(litellm: Any) -> bool:
    """Whether the user configured litellm callbacks or budgets that want its cost and logging."""
    if getattr(litellm, "max_budget", 0):
        return True
    return any(getattr(litellm, name, None) for name in CALLBACK_LISTS)


# litellm.acompletion hands its synchronous request setup (``completion(..., acompletion=True)``,
# which for these providers only builds the request and returns a coroutine) to the loop's default
# thread pool. The hop costs a thread switch, a self-pipe write and GIL hand-offs per call (measured
# in bench/README.md); for providers whose setup does no blocking I/O (static keys, no credential
# refresh), our calls run it inline instead. Anything else keeps the thread pool.
_INLINE_SETUP_PROVIDERS = frozenset({
    "openai", "anthropic", "groq", "mistral", "deepseek", "together_ai", "openrouter", "fireworks_ai",
    "xai", "cerebras", "perplexity", "hosted_vllm", "fake", "local"})
_inline_setup: contextvars.ContextVar[bool] = contextvars.ContextVar("llmops_inline_setup", default=False)
_loops_with_inline_setup: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()


class InlineSetupExecutor(concurrent.futures.ThreadPoolExecutor):
    """A loop's default executor that runs litellm's request setup of our calls inline."""

    def submit(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[_T]:
        """Run litellm's setup of one of our calls now; anything else goes to the thread pool."""
        if _inline_setup.get() and _is_litellm_setup(fn):
            future: concurrent.futures.Future[_T] = concurrent.futures.Future()
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as exc:  # delivered to the awaiting call, like the pool would
                future.set_exception(exc)
            return future
        return super().submit(fn, *args, **kwargs)


def _is_litellm_setup(fn: Any) -> bool:
    """``partial(context.run, partial(litellm.main.completion, ...))``, as litellm.acompletion submits it."""
    inner = fn.args[0] if isinstance(fn, functools.partial) and fn.args else None
    main = sys.modules.get("litellm.main")
    return isinstance(inner, functools.partial) and main is not None and inner.func is getattr(main, "completion", None)


def _use_inline_setup(loop: asyncio.AbstractEventLoop) -> bool:
    """Install the inline-setup executor on ``loop`` unless it already has a default executor."""
    if loop in _loops_with_inline_setup:
        return True
    if getattr(loop, "_default_executor", True) is not None:  # someone's (or asyncio's) pool: keep it
        return False
    loop.set_default_executor(InlineSetupExecutor(thread_name_prefix="llmops-litellm"))
    _loops_with_inline_setup.add(loop)
    return True


class Lean:
    """Context manager for one call: skip litellm's cost and logging; inline its setup where safe.

    See the notes above on both.
    """

    __slots__ = ("_inline", "_resolved", "_tokens")

    def __init__(self, resolved: str) -> None:
        self._resolved = resolved
        self._tokens: tuple[contextvars.Token[bool], contextvars.Token[bool]] | None = None
        self._inline: contextvars.Token[bool] | None = None

    def __enter__(self) -> None:
        if _internal_call is not None and not _litellm_needs_full_path(_litellm_module):
            self._tokens = (_lean_call.set(True), _internal_call.set(True))
        provider = self._resolved.split("/", 1)[0] if "/" in self._resolved else ""
        if provider in _INLINE_SETUP_PROVIDERS and _use_inline_setup(asyncio.get_running_loop()):
            self._inline = _inline_setup.set(True)

    def __exit__(self, *exc: object) -> None:
        if self._tokens is not None and _internal_call is not None:
            _lean_call.reset(self._tokens[0])
            _internal_call.reset(self._tokens[1])
        if self._inline is not None:
            _inline_setup.reset(self._inline)



def litellm_imported() -> bool:
    """Whether this process has imported litellm (replayed runs should not)."""
    return _litellm_module is not None
