"""The LLM layer: one client for every provider, the embedded model, a fake, a cache.

Importing this package does not import litellm; the first provider call does.
"""

from llmops.llm.cache import ResponseCache, request_key
from llmops.llm.client import CallObserver, CallRecord, LLMClient, cost_of, litellm_imported
from llmops.llm.retry import RetryPolicy
from llmops.llm.types import Completion, Message, Usage

__all__ = [
    "CallObserver",
    "CallRecord",
    "Completion",
    "LLMClient",
    "Message",
    "ResponseCache",
    "RetryPolicy",
    "Usage",
    "cost_of",
    "litellm_imported",
    "request_key",
]
