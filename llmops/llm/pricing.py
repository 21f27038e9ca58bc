"""What a call cost: an alias's own prices, else LiteLLM's local price map, looked up once per model."""

from __future__ import annotations

import functools
from typing import Any

from llmops.llm.loader import load_litellm
from llmops.llm.providers import OUR_PROVIDERS
from llmops.llm.types import Usage


@functools.lru_cache(maxsize=4096)
def _prices(model: str) -> tuple[float, float] | None:
    """(input, output) USD per token from LiteLLM's local price map, looked up once per model.

    Cheaper than ``litellm.completion_cost`` on every call (what it costs per call: bench/README.md).
    """
    if model.split("/", 1)[0] in OUR_PROVIDERS:
        return (0.0, 0.0)
    cost_map = load_litellm().model_cost
    candidates = [model]
    if "/" in model:
        candidates.append(model.split("/", 1)[1])
    for name in candidates:
        info = cost_map.get(name)
        if info and "input_cost_per_token" in info:
            return float(info.get("input_cost_per_token") or 0.0), float(info.get("output_cost_per_token") or 0.0)
    return None


PRICE_PARAMS = ("input_cost_per_token", "output_cost_per_token")


def cost_of(model: str, usage: Usage, params: dict[str, Any] | None = None) -> float:
    """USD cost of a call: the alias's own prices if set, else LiteLLM's local price map (else 0).

    ``input_cost_per_token`` / ``output_cost_per_token`` in a model alias's params price
    self-hosted or negotiated models (the same keys LiteLLM accepts for custom pricing).
    """
    if params and any(k in params for k in PRICE_PARAMS):
        return (usage.prompt_tokens * float(params.get("input_cost_per_token") or 0.0)
                + usage.completion_tokens * float(params.get("output_cost_per_token") or 0.0))
    prices = _prices(model)
    if prices is None:
        return 0.0
    return usage.prompt_tokens * prices[0] + usage.completion_tokens * prices[1]



@functools.lru_cache(maxsize=4096)
def model_output_limit(model: str) -> int | None:
    """The most output tokens a model can return, from LiteLLM's price map (None: unknown)."""
    if model.split("/", 1)[0] in OUR_PROVIDERS:
        return None
    cost_map = load_litellm().model_cost
    for name in (model, model.split("/", 1)[-1]):
        info = cost_map.get(name) or {}
        for key in ("max_output_tokens", "max_tokens"):
            value = info.get(key)
            if isinstance(value, int) and value > 0:
                return value
    return None
