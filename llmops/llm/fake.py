"""Scripted fake provider for tests: ``fake/<name>`` models answered from queues or functions.

It is registered with LiteLLM exactly like the embedded model, so tests exercise the real
``litellm.acompletion`` path, our retries, cache and error mapping. Built-in models:

- ``fake/echo``: answers with the last user message.
- anything else: answers from what :func:`script` queued for it (an error if nothing was), or
  from an answers file (:func:`use_answers_file`, ``fake_answers`` in ``[tool.llmops]``).

Example:
    >>> from llmops.llm import fake
    >>> fake.script("fake/m", "first answer", fake.FakeError(429, retry_after=0.01), "after retry")
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class FakeToolCall:
    """A tool call in a scripted answer.

    Attributes:
        name: The function name.
        arguments: A mapping (sent as JSON) or a raw string sent verbatim (malformed on purpose).
        id: The call id (default: ``call_<n>`` by position).
    """

    name: str
    arguments: dict[str, Any] | str = field(default_factory=dict)
    id: str | None = None

    def raw(self) -> str:
        """The arguments as a JSON string."""
        import json

        return self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments)


@dataclass(frozen=True)
class FakeReply:
    """A scripted answer with explicit token counts, tool calls and an optional delay.

    ``finish_reason`` defaults to ``tool_calls`` when the reply calls tools, else ``stop``.
    Streamed, the text comes one word per chunk, ``chunk_delay_s`` apart; ``break_after`` breaks
    the stream (a connection reset) after that many chunks.
    """

    text: str = ""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    delay_s: float = 0.0
    finish_reason: str | None = None
    tool_calls: tuple[FakeToolCall, ...] = ()
    chunk_delay_s: float = 0.0
    break_after: int | None = None

    @property
    def finish(self) -> str:
        """The finish reason sent."""
        return self.finish_reason or ("tool_calls" if self.tool_calls else "stop")


@dataclass(frozen=True)
class FakeError:
    """A scripted provider failure with an HTTP status (429, 500, 503, 401, ...)."""

    status: int
    message: str = "scripted failure"
    retry_after: float | None = None
    delay_s: float = 0.0


@dataclass(frozen=True)
class FakeTimeout:
    """A scripted call that hangs for ``delay_s`` seconds (the client's timeout should fire)."""

    delay_s: float = 3600.0


Responder = Callable[[list[dict[str, Any]], dict[str, Any]], "str | FakeReply | FakeError | FakeTimeout"]
Step = str | FakeReply | FakeError | FakeTimeout


@dataclass
class _Script:
    queue: deque[Step] = field(default_factory=deque)
    responder: Responder | None = None
    calls: list[list[dict[str, Any]]] = field(default_factory=list)


_scripts: dict[str, _Script] = {}
_lock = threading.Lock()


def _normalize(model: str) -> str:
    return model if model.startswith("fake/") else f"fake/{model}"


def script(model: str, *steps: Step, responder: Responder | None = None) -> None:
    """Queue answers (and failures) for a fake model; with ``responder``, answer by function.

    Queued steps are consumed first; when the queue is empty the responder (if any) answers.
    """
    key = _normalize(model)
    with _lock:
        entry = _scripts.setdefault(key, _Script())
        entry.queue.extend(steps)
        if responder is not None:
            entry.responder = responder


def calls(model: str) -> list[list[dict[str, Any]]]:
    """The message lists a fake model received, in order (provider attempts, not cache hits)."""
    with _lock:
        entry = _scripts.get(_normalize(model))
        return list(entry.calls) if entry else []


def reset() -> None:
    """Forget every script and recorded call."""
    with _lock:
        _scripts.clear()


def count_tokens(text: str) -> int:
    """A deterministic stand-in for a tokenizer: whitespace words, at least 1."""
    return max(1, len(text.split()))


def next_step(model: str, messages: list[dict[str, Any]], params: dict[str, Any]) -> Step:
    """Pop (or compute) the next scripted step for a call to ``model``."""
    key = _normalize(model)
    with _lock:
        entry = _scripts.setdefault(key, _Script())
        entry.calls.append(messages)
        if entry.queue:
            return entry.queue.popleft()
        responder = entry.responder
    if responder is not None:
        return responder(messages, params)
    if key == "fake/echo":
        users = [m for m in messages if m.get("role") == "user"]
        return str(users[-1]["content"]) if users else ""
    return FakeError(400, f"no scripted answer for {key}: call llmops.llm.fake.script({key!r}, ...)")


def blocking_delay(step: Step) -> float:
    """Seconds the step should take before answering."""
    if isinstance(step, FakeReply | FakeError | FakeTimeout):
        return step.delay_s
    return 0.0


def sleep(seconds: float) -> None:
    """Sleep helper kept here so sync callers can share it."""
    if seconds > 0:
        time.sleep(seconds)


def use_answers_file(path: Path) -> list[str]:
    """Answer fake models from a YAML file (what ``fake_answers`` in ``[tool.llmops]`` names).

    The file maps each fake model to its rules, tried in order; a rule answers when its
    ``contains`` text is in the last user message (a rule without ``contains`` always answers)::

        fake/support:
          - {contains: "capital of France", answer: "Paris is the capital of France."}
          - {answer: "I do not know."}

    A call that no rule matches fails with a provider error naming the file.

    Returns:
        The models the file scripts.

    Raises:
        UserError: naming the file (and line) when it cannot be read or has the wrong shape.
    """
    from llmops._yaml import YAMLProblem, load_yaml
    from llmops.errors import UserError

    try:
        data, _ = load_yaml(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"cannot read the fake answers file: {exc.strerror or exc}", file=path,
                        key="fake_answers") from None
    except YAMLProblem as exc:
        raise UserError(str(exc), file=path, line=exc.line, key="fake_answers") from None
    if not isinstance(data, dict) or not data:
        raise UserError("expected a mapping of fake models to lists of {contains, answer} rules", file=path,
                        key="fake_answers", hint='e.g. fake/support: [{contains: "refund", answer: "..."}]')
    for model, rules in data.items():
        if not isinstance(rules, list) or not all(
                isinstance(r, dict) and isinstance(r.get("answer"), str) and set(r) <= {"contains", "answer"}
                and isinstance(r.get("contains", ""), str) for r in rules):
            raise UserError(f"{model}: expected a list of {{contains: TEXT, answer: TEXT}} rules", file=path,
                            key=str(model))
        script(str(model), responder=_rules_responder(_normalize(str(model)), rules, path))
    return [_normalize(str(m)) for m in data]


def _rules_responder(model: str, rules: list[dict[str, str]], path: Path) -> Responder:
    def respond(messages: list[dict[str, Any]], params: dict[str, Any]) -> Step:
        users = [m for m in messages if m.get("role") == "user"]
        last = str(users[-1].get("content") or "") if users else ""
        for rule in rules:
            if rule.get("contains", "") in last:
                return rule["answer"]
        return FakeError(400, f"{path}: no rule of {model} matches the last user message")

    return respond
