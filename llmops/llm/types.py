"""In-memory values of the LLM layer (frozen dataclasses; cheap, importable without litellm)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Message:
    """One chat message."""

    role: str
    content: str

    def to_dict(self) -> dict[str, str]:
        """The OpenAI-style dict LiteLLM expects."""
        return {"role": self.role, "content": self.content}


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
        finish_reason: ``stop``, ``length``, ... as the provider reported it.
        usage: Token counts.
        cost_usd: Cost from LiteLLM's price map (0 for local and unknown models).
        latency_s: Wall time of the provider call (of the original call, for a cache hit).
        cached: True when served from the response cache.
        cache_key: The content key in the response cache.
        attempts: How many provider attempts the call took (1 = no retry).
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

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (used by the cache and the run store)."""
        data = asdict(self)
        data["usage"] = asdict(self.usage)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Completion:
        """Inverse of :meth:`to_dict`."""
        usage = Usage(**data.get("usage", {}))
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__ and k != "usage"}
        return cls(usage=usage, **fields)
