"""In-memory values of the LLM layer (frozen dataclasses; cheap, importable without litellm).

They follow the chat-completions model: a message carries text or content parts, an assistant's
tool calls, or a tool's result; a completion carries text, tool calls, parsed structured output
and finish reason, and for streams the time to first token.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any


def parse_json(raw: str | None) -> tuple[Any, str | None]:
    """``(value, None)`` for valid JSON, else ``(None, error)``; an empty string is ``{}``.

    Providers send ``""`` as the arguments of a tool that takes none.
    """
    if raw is None or not raw.strip():
        return {}, None
    try:
        return json.loads(raw), None
    except (ValueError, RecursionError) as exc:
        return None, f"{type(exc).__name__}: {exc}"


def wants_json(response_format: Any) -> bool:
    """Whether a ``response_format`` asks for JSON (a JSON-schema or JSON-object format, or a model class)."""
    if isinstance(response_format, dict):
        return response_format.get("type") in ("json_schema", "json_object")
    return isinstance(response_format, type)  # a pydantic model class, as LiteLLM accepts


def structured_output(text: str, response_format: Any) -> tuple[Any, str | None]:
    """``(parsed, error)``: the JSON a ``response_format`` asked for, parsed from the text.

    ``(None, None)`` when no JSON was asked for. Models sometimes wrap JSON in a Markdown fence;
    the fence is tolerated (the content inside must still be valid JSON).
    """
    if not wants_json(response_format):
        return None, None
    body = text.strip()
    if body.startswith("```"):
        body = body.split("\n", 1)[1] if "\n" in body else ""
        body = body.rsplit("```", 1)[0]
    if not body.strip():
        return None, "the model returned no text where JSON was asked for"
    try:
        return json.loads(body), None
    except (ValueError, RecursionError) as exc:
        return None, f"not valid JSON: {exc}"


@dataclass(frozen=True)
class ToolCall:
    """One function call the model asked for.

    Attributes:
        id: The provider's call id (tool results answer it).
        name: The function name.
        raw_arguments: The arguments exactly as the model wrote them (a JSON string, maybe invalid).
        arguments: The parsed arguments; None when ``raw_arguments`` is not valid JSON.
        error: Why the arguments did not parse (None when they did).
    """

    id: str
    name: str
    raw_arguments: str = "{}"
    arguments: Any = None
    error: str | None = None

    @classmethod
    def of(cls, id: str, name: str, raw_arguments: str | None) -> ToolCall:
        """A call with its arguments parsed from ``raw_arguments``."""
        raw = raw_arguments or ""
        value, error = parse_json(raw)
        return cls(id=id, name=name, raw_arguments=raw, arguments=value, error=error)

    @property
    def valid_json(self) -> bool:
        """Whether the arguments parsed as JSON."""
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        """The OpenAI wire form (what LiteLLM takes in an assistant message)."""
        return {"id": self.id, "type": "function",
                "function": {"name": self.name, "arguments": self.raw_arguments}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ToolCall:
        """From the OpenAI wire form, or from :meth:`record` (as stored)."""
        if "function" in data:
            fn = data.get("function") or {}
            args = fn.get("arguments")
            raw = args if isinstance(args, str) or args is None else json.dumps(args)
            return cls.of(str(data.get("id") or ""), str(fn.get("name") or ""), raw)
        return cls(id=str(data.get("id") or ""), name=str(data.get("name") or ""),
                   raw_arguments=str(data.get("raw_arguments") or ""), arguments=data.get("arguments"),
                   error=data.get("error"))

    def record(self) -> dict[str, Any]:
        """JSON-ready dict of every field (stores, traces, reports)."""
        return asdict(self)


@dataclass(frozen=True)
class Message:
    """One chat message.

    Attributes:
        role: ``system``, ``user``, ``assistant`` or ``tool``.
        content: Its text (for content parts: their text parts joined).
        parts: Content parts as sent (``{"type": "text", ...}``, ``{"type": "image_url", ...}``),
            or None for a plain text message.
        tool_calls: An assistant message's tool calls.
        tool_call_id: A tool message's answer to this call id.
        name: A tool message's function name (optional).
    """

    role: str
    content: str
    parts: tuple[dict[str, Any], ...] | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The OpenAI-style dict LiteLLM expects (plain ``{role, content}`` for a text message)."""
        data: dict[str, Any] = {"role": self.role,
                                "content": list(self.parts) if self.parts is not None else self.content}
        if self.tool_calls:
            data["tool_calls"] = [call.to_dict() for call in self.tool_calls]
            if not self.content and self.parts is None:
                data["content"] = None
        if self.tool_call_id is not None:
            data["tool_call_id"] = self.tool_call_id
        if self.name is not None:
            data["name"] = self.name
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Message:
        """From an OpenAI-style dict (content a string, None, or a list of parts).

        Raises:
            ValueError: when ``role`` is missing or the content is neither text nor a list of parts.
        """
        role = data.get("role")
        if not isinstance(role, str):
            raise ValueError(f"a message needs a role (got {data!r:.80})")
        raw = data.get("content")
        parts: tuple[dict[str, Any], ...] | None = None
        if isinstance(raw, list):
            if not all(isinstance(p, dict) for p in raw):
                raise ValueError(f"{role} message: content parts must be mappings")
            parts = tuple(raw)
            text = "\n".join(str(p.get("text", "")) for p in raw if p.get("type", "text") == "text")
        elif raw is None:
            text = ""
        elif isinstance(raw, str):
            text = raw
        else:
            raise ValueError(f"{role} message: content must be text or a list of parts, "
                             f"got {type(raw).__name__}")
        calls = tuple(ToolCall.from_dict(c) for c in data.get("tool_calls") or () if isinstance(c, dict))
        call_id = data.get("tool_call_id")
        name = data.get("name")
        return cls(role=role, content=text, parts=parts, tool_calls=calls,
                   tool_call_id=str(call_id) if call_id is not None else None,
                   name=str(name) if name is not None else None)

    @classmethod
    def coerce(cls, value: Message | dict[str, Any]) -> Message:
        """A Message from a Message or an OpenAI-style dict."""
        return value if isinstance(value, Message) else cls.from_dict(value)


@dataclass(frozen=True)
class Usage:
    """Token counts of one call."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class Completion:
    """The result of one LLM call.

    Attributes:
        text: The generated text.
        model: The model as requested (alias or LiteLLM string).
        resolved_model: The LiteLLM model string actually called.
        finish_reason: ``stop``, ``length``, ``tool_calls``, ... as the provider reported it.
        usage: Token counts.
        cost_usd: Cost from LiteLLM's price map (0 for local and unknown models, and for a cache hit).
        latency_s: Wall time of the provider call (of the cache lookup, for a cache hit).
        cached: True when served from the response cache.
        cache_key: The content key in the response cache.
        attempts: How many provider attempts the call took (1 = no retry).
        tool_calls: The tool calls the model asked for, in order.
        parsed: The structured output parsed from ``text`` when the call asked for a JSON
            ``response_format`` and the text is valid JSON (else None).
        parse_error: Why ``text`` did not parse as the JSON a ``response_format`` asked for.
        ttft_s: Time to first token, for a streamed call (None otherwise).
        streamed: Whether the call was streamed.
        recorded_cost_usd: For a cache hit: what the answer cost when it was recorded
            (``cost_usd`` is 0: nothing is paid now).
        recorded_latency_s: For a cache hit: the original call's latency (``latency_s`` is the
            lookup's).
    """

    text: str
    model: str
    resolved_model: str
    finish_reason: str | None = None
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    latency_s: float = 0.0
    cached: bool = False
    cache_key: str | None = None
    attempts: int = 1
    tool_calls: tuple[ToolCall, ...] = ()
    parsed: Any = None
    parse_error: str | None = None
    ttft_s: float | None = None
    streamed: bool = False
    recorded_cost_usd: float = 0.0
    recorded_latency_s: float | None = None

    @property
    def tokens_per_s(self) -> float | None:
        """Output tokens per second after the first token (streams only)."""
        if self.ttft_s is None or self.usage.completion_tokens <= 1:
            return None
        generating = self.latency_s - self.ttft_s
        return (self.usage.completion_tokens - 1) / generating if generating > 0 else None

    def message(self) -> Message:
        """This completion as the assistant message that continues the conversation."""
        return Message(role="assistant", content=self.text, tool_calls=self.tool_calls)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (used by the cache and the run store); fields at defaults are left out."""
        data = asdict(self)
        data["usage"] = asdict(self.usage)
        data["tool_calls"] = [call.record() for call in self.tool_calls]
        defaults: dict[str, Any] = {"tool_calls": [], "parsed": None, "parse_error": None, "ttft_s": None,
                                    "streamed": False, "recorded_cost_usd": 0.0, "recorded_latency_s": None}
        for name, default in defaults.items():
            if data[name] is default or (type(data[name]) is type(default) and data[name] == default):
                del data[name]  # stored rows of plain calls stay as they always were
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Completion:
        """Inverse of :meth:`to_dict`."""
        usage = Usage(**data.get("usage", {}))
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__ and k not in ("usage", "tool_calls")}
        calls = tuple(ToolCall.from_dict(c) for c in data.get("tool_calls") or ())
        return cls(usage=usage, tool_calls=calls, **fields)
