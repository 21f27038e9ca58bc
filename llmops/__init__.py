"""llmops: versioned Jinja prompts, any LLM through LiteLLM, traces, and a CI regression harness.

The public API is importable from here. Attributes load lazily so that ``import llmops`` (and
``llmops --help``) never import litellm, ragas or langfuse.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from llmops._version import __version__ as __version__

_EXPORTS: dict[str, str] = {
    # prompts and calls
    "acomplete": "llmops.api",
    "astream": "llmops.api",
    "stream": "llmops.api",
    "complete": "llmops.api",
    "load_prompt": "llmops.api",
    "render_prompt": "llmops.api",
    "get_settings": "llmops.api",
    "list_models": "llmops.api",
    "default_client": "llmops.api",
    "set_default_client": "llmops.api",
    "Settings": "llmops.config",
    "load_settings": "llmops.config",
    "LLMClient": "llmops.llm.client",
    "Completion": "llmops.llm.types",
    "Message": "llmops.llm.types",
    "Usage": "llmops.llm.types",
    "ResponseCache": "llmops.llm.cache",
    "RetryPolicy": "llmops.llm.retry",
    "PromptRegistry": "llmops.prompts.registry",
    "PromptRef": "llmops.prompts.registry",
    "PromptVersion": "llmops.prompts.template",
    # suites and runs
    "run_suite": "llmops.runner.engine",
    "arun_suite": "llmops.runner.engine",
    "resume_run": "llmops.runner.engine",
    "dry_run": "llmops.runner.preflight",
    "run_and_gate": "llmops.gate",
    "load_suite": "llmops.evalsets.loader",
    "RunStore": "llmops.runner.store",
    "RunResult": "llmops.runner.results",
    "UnitResult": "llmops.runner.results",
    # evaluators
    "Evaluator": "llmops.evaluators.base",
    "Sample": "llmops.evaluators.base",
    "Score": "llmops.evaluators.base",
    "EvalContext": "llmops.evaluators.base",
    "create_evaluator": "llmops.evaluators.base",
    "register_evaluator": "llmops.evaluators.base",
    "assert_scores": "llmops.assertions",
    "evaluate": "llmops.assertions",
    # tracing
    "observe": "llmops.tracing.observe",
    "trace_attributes": "llmops.tracing.observe",
    "get_tracer": "llmops.tracing.tracer",
    # errors
    "LLMOpsError": "llmops.errors",
    "UserError": "llmops.errors",
    "ConfigError": "llmops.errors",
    "PromptError": "llmops.errors",
    "ProviderError": "llmops.errors",
    "AuthError": "llmops.errors",
    "CacheMissError": "llmops.errors",
}

__all__ = [
    "AuthError",
    "CacheMissError",
    "Completion",
    "ConfigError",
    "EvalContext",
    "Evaluator",
    "LLMClient",
    "LLMOpsError",
    "Message",
    "PromptError",
    "PromptRef",
    "PromptRegistry",
    "PromptVersion",
    "ProviderError",
    "ResponseCache",
    "RetryPolicy",
    "RunResult",
    "RunStore",
    "Sample",
    "Score",
    "Settings",
    "UnitResult",
    "Usage",
    "UserError",
    "acomplete",
    "arun_suite",
    "assert_scores",
    "astream",
    "complete",
    "create_evaluator",
    "default_client",
    "dry_run",
    "evaluate",
    "get_settings",
    "get_tracer",
    "list_models",
    "load_prompt",
    "load_settings",
    "load_suite",
    "observe",
    "register_evaluator",
    "render_prompt",
    "resume_run",
    "run_and_gate",
    "run_suite",
    "set_default_client",
    "stream",
    "trace_attributes",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'llmops' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:
    from llmops.api import (
        acomplete,
        astream,
        complete,
        default_client,
        get_settings,
        list_models,
        load_prompt,
        render_prompt,
        set_default_client,
        stream,
    )
    from llmops.assertions import assert_scores, evaluate
    from llmops.config import Settings, load_settings
    from llmops.errors import (
        AuthError,
        CacheMissError,
        ConfigError,
        LLMOpsError,
        PromptError,
        ProviderError,
        UserError,
    )
    from llmops.evalsets.loader import load_suite
    from llmops.evaluators.base import EvalContext, Evaluator, Sample, Score, create_evaluator, register_evaluator
    from llmops.gate import run_and_gate
    from llmops.llm.cache import ResponseCache
    from llmops.llm.client import LLMClient
    from llmops.llm.retry import RetryPolicy
    from llmops.llm.types import Completion, Message, Usage
    from llmops.prompts.registry import PromptRef, PromptRegistry
    from llmops.prompts.template import PromptVersion
    from llmops.runner.engine import arun_suite, resume_run, run_suite
    from llmops.runner.preflight import dry_run
    from llmops.runner.results import RunResult, UnitResult
    from llmops.runner.store import RunStore
    from llmops.tracing.observe import observe, trace_attributes
    from llmops.tracing.tracer import get_tracer
