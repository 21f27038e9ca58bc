"""One prompt version: YAML front matter + a sandboxed Jinja body that renders to chat messages.

A file looks like::

    ---
    description: Answer from the given contexts
    inputs:
      question: {type: string}
      contexts: {type: list, default: []}
    model: local/smollm2
    params: {temperature: 0, max_tokens: 96}
    ---
    {% message "system" %}Answer only from the contexts.{% endmessage %}
    {% message "user" %}{{ question }}{% endmessage %}

A body without ``message`` blocks renders to one user message.

Tools and output shape live in the front matter too::

    tools:                       # inline, or a file shared by several prompts: tools: tools/support.yaml
      - name: lookup_order
        description: Find an order by id
        parameters: {type: object, properties: {order_id: {type: string}}, required: [order_id]}
    tool_choice: auto            # auto | none | required | {name: lookup_order}
    response_format:             # a JSON Schema for the reply (or an OpenAI response_format)
      type: object
      properties: {answer: {type: string}}

A shared tools file path is relative to the prompts folder (the one holding the prompt folders).
The content hash covers the shared file's bytes, so editing it changes every prompt using it.

A conversation renders from inputs with ``{% conversation history %}``: each item of the list is
an OpenAI-style message (``role``, ``content`` text or parts, an assistant's ``tool_calls``, a
tool's ``tool_call_id``), kept as structured messages rather than text.
"""

from __future__ import annotations

import contextvars
import functools
import hashlib
import json
import math
import re
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from jinja2 import StrictUndefined, TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError, TemplateError, UndefinedError
from jinja2.ext import Extension
from jinja2.parser import Parser
from jinja2.runtime import Macro
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llmops._yaml import SafeLoader, YAMLProblem, line_at, load_yaml
from llmops.errors import PromptError, did_you_mean
from llmops.llm.types import Message

InputType = Literal["string", "integer", "number", "boolean", "list", "object", "any"]
ROLES = ("system", "user", "assistant")
_PY_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "list": (list, tuple),
    "object": (dict,),
}


class InputSpec(BaseModel):
    """Declared input variable of a prompt."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: InputType = "string"
    required: bool | None = None
    default: Any = None
    description: str | None = None

    @property
    def is_required(self) -> bool:
        """Required unless it has a default or says ``required: false``."""
        if self.required is not None:
            return self.required
        return self.default is None


class FrontMatter(BaseModel):
    """The YAML header of a prompt file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str = ""
    inputs: dict[str, InputSpec] = Field(default_factory=dict)
    model: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    tools: list[dict[str, Any]] | str | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None


# Per-process random markers: a template input cannot forge a message boundary without
# knowing them, and they never appear in anything we write out.
_NONCE = secrets.token_hex(8)
_OPEN = f"\x00llmops-msg-{_NONCE}:"
_CLOSE = f"\x00llmops-end-{_NONCE}\x00"


class MessageExtension(Extension):
    """``{% message "role" %}...{% endmessage %}`` blocks."""

    tags = {"message"}  # noqa: RUF012 - Jinja's API

    def parse(self, parser: Parser) -> nodes.Node:
        """Parse one message block (blocks cannot be nested: a syntax error at load)."""
        lineno = next(parser.stream).lineno
        role = parser.parse_expression()
        body = parser.parse_statements(("name:endmessage",), drop_needle=True)
        for node in body:
            for inner in (node, *node.find_all(nodes.CallBlock)):
                call = getattr(inner, "call", None)
                if isinstance(inner, nodes.CallBlock) and isinstance(call, nodes.Call) \
                        and isinstance(call.node, nodes.ExtensionAttribute) and call.node.name == "_wrap":
                    parser.fail("message blocks cannot be nested: close this one with {% endmessage %} first",
                                inner.lineno)
        call = self.call_method("_wrap", [role])
        return nodes.CallBlock(call, [], [], body).set_lineno(lineno)

    def _wrap(self, role: object, caller: Macro) -> str:
        if role not in ROLES:
            raise TemplateError(f"message role must be one of {', '.join(ROLES)}, got {role!r}")
        blocks = _blocks.get()
        before = blocks[0] if blocks is not None else 0
        content = caller()
        if _OPEN in content or _CLOSE in content:
            if blocks is not None and blocks[0] > before:  # a macro with a block, called inside a block
                raise TemplateError("message blocks cannot be nested (a macro with a message block called "
                                    "inside another block?)")
            raise TemplateError("an input contains llmops's internal message marker")
        if blocks is not None:
            blocks[0] += 1
        return f"{_OPEN}{role}\x00{content}{_CLOSE}"


# Message blocks rendered by the current render: any other marker in the text was forged.
_blocks: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("llmops_message_blocks", default=None)


_CONVERSATION = "\x01conversation"


class ConversationExtension(Extension):
    """``{% conversation history %}``: the messages of a list input, kept structured.

    Each item is an OpenAI-style message mapping: ``role`` (system, user, assistant, tool),
    ``content`` (text, or a list of parts such as ``{type: image_url, image_url: {url: ...}}``),
    an assistant's ``tool_calls`` and a tool's ``tool_call_id``.
    """

    tags = {"conversation"}  # noqa: RUF012 - Jinja's API

    def parse(self, parser: Parser) -> nodes.Node:
        """Parse ``{% conversation expr %}``."""
        lineno = next(parser.stream).lineno
        value = parser.parse_expression()
        return nodes.Output([self.call_method("_encode", [value])]).set_lineno(lineno)

    def _encode(self, value: object) -> str:
        if not isinstance(value, list | tuple):
            raise TemplateError(f"conversation needs a list of messages, got {type(value).__name__}")
        checked: list[dict[str, Any]] = []
        for index, item in enumerate(value):
            if not isinstance(item, dict):
                raise TemplateError(f"conversation item {index} must be a mapping with role and content")
            try:
                message = Message.from_dict(dict(item))
            except ValueError as exc:
                raise TemplateError(f"conversation item {index}: {exc}") from None
            if message.role not in (*ROLES, "tool"):
                raise TemplateError(f"conversation item {index}: role must be one of "
                                    f"{', '.join((*ROLES, 'tool'))}, got {message.role!r}")
            checked.append(message.to_dict())
        blocks = _blocks.get()
        if blocks is not None:  # a marker of our own (JSON escapes any NUL an item holds)
            blocks[0] += 1
        return f"{_OPEN}{_CONVERSATION}\x00{json.dumps(checked, ensure_ascii=False)}{_CLOSE}"


# A template is untrusted code (it may come from prompt management): beyond the sandbox's
# attribute rules, refuse the one-expression memory and CPU bombs ('x' * 10**10, 10**10**10,
# 'x'|center(10**9), '%1000000000d' % 1, '{:>1000000000}'.format(1)) and cap the rendered text.
MAX_REPEAT_ITEMS = 10_000_000
MAX_POWER_BITS = 100_000
MAX_WIDTH = 100_000  # padding / field width / precision of one formatting operation
MAX_OUTPUT_CHARS = 20_000_000  # a rendered prompt far beyond any model's context window
# Padding methods and filters whose int argument is an output width.
_PADDING_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})
# Numbers inside a %-spec ("%-1000000d", "%.99999999f") or a {}-spec ("{:>1000000}", "{0:{1}}").
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?")
_BRACE_SPEC = re.compile(r"\{[^{}]*:([^{}]*(?:\{[^{}]*\}[^{}]*)*)\}")


def _too_wide(number: object) -> bool:
    return type(number) is int and number > MAX_WIDTH


def _check_format(fmt: str, args: tuple[Any, ...] | Any, kwargs: dict[str, Any] | None = None) -> None:
    """Refuse a format string (``%`` or ``str.format``) whose widths or precisions exceed MAX_WIDTH."""
    values = [*(args if isinstance(args, tuple) else (args,)), *(kwargs or {}).values()]
    if isinstance(args, dict):
        values += list(args.values())
    if "%" in fmt:
        for width, precision in _PERCENT_SPEC.findall(fmt):
            for part in (width, precision):
                if part == "*" and any(_too_wide(v) for v in values):
                    raise SecurityError(f"a '*' width above {MAX_WIDTH} is too large for a template")
                if part.isdigit() and int(part) > MAX_WIDTH:
                    raise SecurityError(f"a format width of {part} is too large for a template")
    if "{" in fmt:
        for spec in _BRACE_SPEC.findall(fmt):
            if "{" in spec and any(_too_wide(v) for v in values):
                raise SecurityError(f"a nested format width above {MAX_WIDTH} is too large for a template")
            if any(int(n) > MAX_WIDTH for n in re.findall(r"\d+", spec)):
                raise SecurityError(f"a format spec '{spec[:40]}' is too large for a template")


def _bounded_filter(name: str, original: Any) -> Any:
    def bounded(value: Any, *args: Any, **kwargs: Any) -> Any:
        if name == "format" and isinstance(value, str):
            _check_format(value, args, kwargs)
        elif any(_too_wide(a) for a in (*args, *kwargs.values())):
            raise SecurityError(f"'{name}' with a width above {MAX_WIDTH} is too large for a template")
        return original(value, *args, **kwargs)

    bounded.__name__ = getattr(original, "__name__", name)
    # Keep Jinja's pass_context / pass_eval_context markers (none of these filters use them).
    for marker in ("jinja_pass_arg",):
        if hasattr(original, marker):
            setattr(bounded, marker, getattr(original, marker))
    return bounded


class _Sandbox(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "%"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        ints = type(left) is int and type(right) is int
        if operator == "**" and ints and abs(left) > 1 and right > 0 and right * math.log2(abs(left)) > MAX_POWER_BITS:
            raise SecurityError(f"{left} ** {right} is too large for a template")
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and type(times) is int and len(seq) * times > MAX_REPEAT_ITEMS:
                    raise SecurityError(f"repeating a {type(seq).__name__} {times} times is too large for a template")
        if operator == "%" and isinstance(left, str):
            _check_format(left, right)
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        owner = getattr(__obj, "__self__", None)
        if (isinstance(owner, str) and getattr(__obj, "__name__", "") in _PADDING_METHODS
                and any(_too_wide(a) for a in (*args, *kwargs.values()))):
            raise SecurityError(f"str.{__obj.__name__} with a width above {MAX_WIDTH} is too large for a template")
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Any:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        fmt: str = value.__self__

        def checked(*args: Any, **kwargs: Any) -> Any:
            _check_format(fmt, args, kwargs)
            return wrapped(*args, **kwargs)

        return checked


def _environment() -> ImmutableSandboxedEnvironment:
    env = _Sandbox(
        undefined=StrictUndefined,
        extensions=[MessageExtension, ConversationExtension],
        autoescape=False,
        keep_trailing_newline=False,
        trim_blocks=True,
        lstrip_blocks=True,
        # Jinja's optimizer folds constant expressions while *compiling*: it would run
        # `'x'|center(10**9)` when a prompt is loaded (prompts list/lock/check), outside every
        # render-time bound. Without it, all template work happens at render, under the sandbox.
        optimized=False,
    )
    env.filters["tojson"] = _tojson
    for name in ("center", "indent", "format"):
        env.filters[name] = _bounded_filter(name, env.filters[name])
    return env


def _tojson(value: Any, indent: int | None = None) -> str:
    import json

    return json.dumps(value, ensure_ascii=False, indent=indent)


_ENV = _environment()
FRONT_MATTER_MAX_NODES = 100_000


def split_front_matter(text: str, path: Path) -> tuple[dict[str, Any], str, int]:
    """Split a prompt file into (front matter dict, body, number of header lines)."""
    if not text.startswith("---"):
        return {}, text, 0
    lines = text.split("\n")
    for index in range(1, len(lines)):
        if lines[index].rstrip() == "---":
            header = "\n".join(lines[1:index])
            try:
                data = load_yaml(header, loader=SafeLoader, max_nodes=FRONT_MATTER_MAX_NODES)[0] or {}
            except YAMLProblem as exc:
                line = exc.line + 1 if exc.line is not None else None  # the header starts on line 2
                raise PromptError(f"invalid YAML front matter: {exc.message.removeprefix('invalid YAML: ')}",
                                  file=path, line=line, key=exc.key) from None
            if not isinstance(data, dict):
                raise PromptError("front matter must be a YAML mapping", file=path, line=2)
            return data, "\n".join(lines[index + 1:]), index + 1
    raise PromptError("front matter opened with '---' is never closed", file=path, line=1,
                      hint="add a line '---' after the header")


@dataclass(frozen=True)
class PromptVersion:
    """One parsed, compiled version of a prompt.

    Attributes:
        name: Prompt name (its folder).
        version: Version number (from ``vN.jinja``).
        path: The file.
        source: The full file text (front matter included).
        meta: The validated front matter.
        content_hash: sha256 of the file bytes; the lock file records it.
    """

    name: str
    version: int
    path: Path
    source: str
    meta: FrontMatter
    content_hash: str
    body: str = field(repr=False)
    header_lines: int = field(repr=False, default=0)
    tools: tuple[dict[str, Any], ...] = ()
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None

    @property
    def call_params(self) -> dict[str, Any]:
        """The call params this version declares: ``params`` plus tools, tool_choice, response_format."""
        params = dict(self.meta.params)
        if self.tools:
            params["tools"] = [dict(t) for t in self.tools]
        if self.tool_choice is not None:
            params["tool_choice"] = self.tool_choice
        if self.response_format is not None:
            params["response_format"] = self.response_format
        return params

    @property
    def tool_names(self) -> list[str]:
        """The names of the declared tools, in order."""
        return [t["function"]["name"] for t in self.tools]

    def tool_schema(self, name: str) -> dict[str, Any] | None:
        """The JSON-Schema ``parameters`` of the declared tool ``name`` (None if not declared)."""
        for tool in self.tools:
            if tool["function"]["name"] == name:
                return dict(tool["function"].get("parameters") or {"type": "object"})
        return None

    @property
    def ref(self) -> str:
        """``name@version``."""
        return f"{self.name}@{self.version}"

    @classmethod
    def load(cls, name: str, version: int, path: Path) -> PromptVersion:
        """Read and validate a prompt file (the template compiles lazily on first render)."""
        try:
            raw = path.read_bytes()
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PromptError(f"not valid UTF-8 at byte {exc.start}", file=path) from None
        except OSError as exc:
            raise PromptError(f"cannot read prompt file: {exc.strerror}", file=path) from None
        text = text.replace("\r\n", "\n")
        data, body, header_lines = split_front_matter(text, path)
        try:
            meta = FrontMatter.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            key = ".".join(str(p) for p in err["loc"])
            hint = None
            if err["type"] == "extra_forbidden":
                top = str(err["loc"][-1])
                hint = did_you_mean(top, FrontMatter.model_fields if len(err["loc"]) == 1
                                    else InputSpec.model_fields)
            raise PromptError(f"front matter key '{key}': {err['msg']}", file=path,
                              line=_front_matter_line(text, header_lines, tuple(err["loc"])), key=key,
                              hint=hint) from None
        digest = hashlib.sha256(raw)
        tools_path: Path | None = None
        tool_data: Any = meta.tools
        if isinstance(meta.tools, str):
            tools_path, tool_data, tool_bytes = _read_tools_file(path, meta.tools, text, header_lines)
            digest.update(b"\0tools\0" + tool_bytes)  # editing the shared file changes this version
        line_of = functools.partial(_front_matter_line, text, header_lines)
        tools = tools_from_front_matter(tool_data, tools_path or path,
                                        None if tools_path else line_of(("tools",)))
        response_format = response_format_from_front_matter(meta.response_format, path,
                                                            line_of(("response_format",)))
        choice = _tool_choice(meta.tool_choice, tools, path, line_of(("tool_choice",)))
        pv = cls(name=name, version=version, path=path, source=text, meta=meta,
                 content_hash=digest.hexdigest() if tools_path else hashlib.sha256(raw).hexdigest(),
                 body=body, header_lines=header_lines, tools=tools, tool_choice=choice,
                 response_format=response_format)
        pv._compile()  # syntax errors surface at load, with file and line
        return pv

    def _compile(self) -> Any:
        cached = _COMPILED.get(self.content_hash + str(self.path))
        if cached is not None:
            return cached
        # Pad with blank lines so Jinja's line numbers are the file's line numbers.
        padded = "\n" * self.header_lines + self.body
        try:
            code = _ENV.compile(padded, name=self.ref, filename=str(self.path))
        except TemplateSyntaxError as exc:
            raise PromptError(f"template syntax error: {exc.message}", file=self.path,
                              line=exc.lineno) from None
        template = _ENV.template_class.from_code(_ENV, code, _ENV.make_globals(None), None)
        _COMPILED[self.content_hash + str(self.path)] = template
        return template

    def validate_inputs(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """Check types and required inputs; fill defaults. Returns the rendering context."""
        context = dict(inputs)
        for key, spec in self.meta.inputs.items():
            if key not in context or context[key] is None:
                if spec.is_required:
                    raise PromptError(f"{self.ref}: missing required input '{key}'", file=self.path,
                                      key=key, hint=f"pass it, e.g. --input {key}=...")
                context[key] = spec.default
                continue
            allowed = _PY_TYPES.get(spec.type)
            value = context[key]
            bad_bool = isinstance(value, bool) and spec.type in ("integer", "number")
            if allowed is not None and (not isinstance(value, allowed) or bad_bool):
                raise PromptError(
                    f"{self.ref}: input '{key}' must be {spec.type}, got {type(value).__name__}",
                    file=self.path, key=key)
        return context

    def render(self, inputs: dict[str, Any] | None = None) -> list[Message]:
        """Render to chat messages.

        Raises:
            PromptError: naming the variable and prompt@version for an undefined variable,
                a missing or mistyped input, or an operation the sandbox refused.
        """
        context = self.validate_inputs(inputs or {})
        template = self._compile()
        blocks = [0]
        token = _blocks.set(blocks)
        try:
            text = _bounded_render(template, context)
        except UndefinedError as exc:
            line = _template_line(self.path)
            raise PromptError(f"{self.ref}: {exc.message}", file=self.path, line=line,
                              hint=self._undefined_hint(context)) from None
        except SecurityError as exc:
            raise PromptError(f"{self.ref}: blocked by the template sandbox: {exc}", file=self.path,
                              line=_template_line(self.path)) from None
        except TemplateError as exc:
            raise PromptError(f"{self.ref}: {exc.message or exc}", file=self.path,
                              line=_template_line(self.path)) from None
        except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
            raise PromptError(f"{self.ref}: rendering failed: {type(exc).__name__}: {exc}",
                              file=self.path, line=_template_line(self.path)) from None
        except RecursionError:
            raise PromptError(f"{self.ref}: rendering failed: recursion too deep (a macro calling itself?)",
                              file=self.path) from None
        except MemoryError:
            raise PromptError(f"{self.ref}: rendering failed: out of memory (a template building huge text?)",
                              file=self.path, line=_template_line(self.path)) from None
        finally:
            _blocks.reset(token)
        if text.count(_OPEN) != blocks[0] or text.count(_CLOSE) != blocks[0]:
            raise PromptError(f"{self.ref}: an input contains llmops's internal message marker",
                              file=self.path, hint="inputs are data: remove the NUL-delimited marker from them")
        return _to_messages(text)

    def _undefined_hint(self, context: dict[str, Any]) -> str:
        declared = sorted(set(self.meta.inputs) | set(context))
        return f"inputs given or declared: {', '.join(declared) or '(none)'}"


# ---- tools and response format ------------------------------------------------------------
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_TOOL_CHOICES = ("auto", "none", "required")


def _check_schema(schema: Any, where: str, file: Path, line: int | None) -> None:
    """Raise a PromptError naming ``where`` when ``schema`` is not a valid JSON Schema."""
    import jsonschema

    if not isinstance(schema, dict):
        raise PromptError(f"{where} must be a JSON Schema mapping, got {type(schema).__name__}",
                          file=file, line=line, key=where)
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        at = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        raise PromptError(f"{where} is not a valid JSON Schema: {exc.message} (at {at})", file=file, line=line,
                          key=where, hint="see https://json-schema.org/understanding-json-schema") from None


def tools_from_front_matter(data: Any, file: Path, line: int | None = None) -> tuple[dict[str, Any], ...]:
    """Tools in the OpenAI form (``{type: function, function: {name, description, parameters}}``).

    Accepts that form or the short ``{name, description, parameters}``; checks names are unique
    and every ``parameters`` is a valid JSON Schema.

    Raises:
        PromptError: naming the file, line and tool for a malformed tool.
    """
    if data is None:
        return ()
    if isinstance(data, dict) and isinstance(data.get("tools"), list):
        data = data["tools"]  # a shared file may hold {tools: [...]}
    if not isinstance(data, list):
        raise PromptError("tools must be a list of tools", file=file, line=line, key="tools")
    tools: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index, item in enumerate(data):
        where = f"tools[{index}]"
        if not isinstance(item, dict):
            raise PromptError(f"{where} must be a mapping with name, description, parameters",
                              file=file, line=line, key=where)
        fn = item.get("function") if item.get("type") == "function" else item
        if not isinstance(fn, dict):
            raise PromptError(f"{where}.function must be a mapping", file=file, line=line, key=where)
        unknown = set(fn) - {"name", "description", "parameters", "strict"}
        if unknown:
            raise PromptError(f"{where}: unknown key '{sorted(unknown)[0]}'", file=file, line=line, key=where,
                              hint="a tool has name, description and parameters (a JSON Schema)")
        name = fn.get("name")
        if not isinstance(name, str) or not _TOOL_NAME.match(name):
            raise PromptError(f"{where}: name must be 1-64 letters, digits, _ or -, got {name!r}",
                              file=file, line=line, key=where)
        if name in seen:
            raise PromptError(f"{where}: tool '{name}' is declared twice", file=file, line=line, key=where)
        seen.add(name)
        parameters = fn.get("parameters", {"type": "object", "properties": {}})
        _check_schema(parameters, f"{where}.parameters ({name})", file, line)
        out: dict[str, Any] = {"name": name, "description": str(fn.get("description") or ""),
                               "parameters": parameters}
        if "strict" in fn:
            out["strict"] = bool(fn["strict"])
        tools.append({"type": "function", "function": out})
    return tuple(tools)


def response_format_from_front_matter(data: Any, file: Path, line: int | None = None) -> dict[str, Any] | None:
    """An OpenAI ``response_format`` from front matter: as given, or built from a bare JSON Schema.

    Raises:
        PromptError: when the schema is not a valid JSON Schema.
    """
    if data is None:
        return None
    kind = data.get("type")
    if kind in ("json_object", "text"):
        return dict(data)
    if kind == "json_schema":
        spec = data.get("json_schema")
        if not isinstance(spec, dict) or "schema" not in spec:
            raise PromptError("response_format.json_schema needs a 'schema'", file=file, line=line,
                              key="response_format")
        _check_schema(spec["schema"], "response_format.json_schema.schema", file, line)
        return {"type": "json_schema", "json_schema": dict(spec)}
    _check_schema(data, "response_format", file, line)
    return {"type": "json_schema", "json_schema": {"name": "output", "schema": dict(data)}}


def response_schema(response_format: Any) -> dict[str, Any] | None:
    """The JSON Schema inside a ``response_format`` (None for ``json_object`` or none)."""
    if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
        spec = response_format.get("json_schema") or {}
        schema = spec.get("schema") if isinstance(spec, dict) else None
        return schema if isinstance(schema, dict) else None
    return None


def _tool_choice(choice: Any, tools: tuple[dict[str, Any], ...], file: Path,
                 line: int | None) -> str | dict[str, Any] | None:
    if choice is None:
        return None
    names = [t["function"]["name"] for t in tools]
    if isinstance(choice, str):
        if choice in _TOOL_CHOICES:
            return choice
        if choice in names:
            return {"type": "function", "function": {"name": choice}}
        raise PromptError(f"tool_choice '{choice}' is neither auto, none, required nor a declared tool",
                          file=file, line=line, key="tool_choice", hint=did_you_mean(choice, [*_TOOL_CHOICES, *names]))
    name = choice.get("name") or (choice.get("function") or {}).get("name")
    if name not in names:
        raise PromptError(f"tool_choice names the undeclared tool {name!r}", file=file, line=line,
                          key="tool_choice", hint=f"declared tools: {', '.join(names) or '(none)'}")
    return {"type": "function", "function": {"name": name}}


def _read_tools_file(prompt_path: Path, value: str, text: str, header_lines: int) -> tuple[Path, Any, bytes]:
    """(path, parsed content, bytes) of a shared tools file, relative to the prompts folder."""
    line = _front_matter_line(text, header_lines, ("tools",))
    root = prompt_path.parent.parent
    target = (root / value).resolve()
    if not target.is_relative_to(root.resolve()):
        raise PromptError(f"tools file '{value}' is outside the prompts folder {root}", file=prompt_path,
                          line=line, key="tools")
    try:
        raw = target.read_bytes()
    except OSError as exc:
        raise PromptError(f"cannot read tools file '{value}' ({exc.strerror})", file=prompt_path, line=line,
                          key="tools", hint=f"paths are relative to the prompts folder {root}") from None
    try:
        if target.suffix == ".json":
            data = json.loads(raw)
        else:
            data = load_yaml(raw.decode("utf-8"), loader=SafeLoader, max_nodes=FRONT_MATTER_MAX_NODES)[0]
    except (ValueError, YAMLProblem) as exc:
        message = exc.message if isinstance(exc, YAMLProblem) else str(exc)
        raise PromptError(f"tools file is not valid {target.suffix.lstrip('.').upper() or 'YAML'}: {message}",
                          file=target) from None
    return target, data, raw


_COMPILED: dict[str, Any] = {}


def _bounded_render(template: Any, context: dict[str, Any]) -> str:
    """Render chunk by chunk and stop once the text passes MAX_OUTPUT_CHARS (loops that print forever)."""
    parts: list[str] = []
    size = 0
    for chunk in template.generate(context):
        size += len(chunk)
        if size > MAX_OUTPUT_CHARS:
            raise SecurityError(f"the rendered text is longer than {MAX_OUTPUT_CHARS:,} characters")
        parts.append(chunk)
    return "".join(parts)


def _front_matter_line(text: str, header_lines: int, loc: tuple[Any, ...]) -> int | None:
    """File line of the front matter key at ``loc`` (the header starts on line 2)."""
    header = "\n".join(text.split("\n")[1:max(1, header_lines - 1)])
    try:
        node = load_yaml(header, loader=SafeLoader, max_nodes=FRONT_MATTER_MAX_NODES)[1]
    except YAMLProblem:
        return None
    line = line_at(node, loc)
    return line + 1 if line is not None else None


def _template_line(path: Path) -> int | None:
    """Line of the innermost traceback frame that belongs to the template file."""
    tb = sys.exc_info()[2]
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == str(path):
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _to_messages(text: str) -> list[Message]:
    if _OPEN not in text:
        return [Message(role="user", content=text.strip())]
    messages: list[Message] = []
    rest = text
    while _OPEN in rest:
        before, _, rest = rest.partition(_OPEN)
        if before.strip():
            messages.append(Message(role="user", content=before.strip()))
        role, _, rest = rest.partition("\x00")
        content, _, rest = rest.partition(_CLOSE)
        if role == _CONVERSATION:
            messages.extend(Message.from_dict(item) for item in json.loads(content))
            continue
        messages.append(Message(role=role, content=content.strip()))
    if rest.strip():
        messages.append(Message(role="user", content=rest.strip()))
    return messages


def render_string(source: str, inputs: dict[str, Any], *, name: str = "<string>") -> list[Message]:
    """Render a template given as a string (same sandbox and rules as prompt files)."""
    pv = PromptVersion(name=name, version=0, path=Path(f"<{name}>"), source=source, meta=FrontMatter(),
                       content_hash=hashlib.sha256(source.encode()).hexdigest(), body=source)
    return pv.render(inputs)
