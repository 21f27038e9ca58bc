"""Production traces to regression cases: ``llmops traces export --to evalsets/FILE.yaml``.

A traced call made through ``llmops.complete`` records the prompt's template inputs, so a bad
production call becomes a case of a suite that runs the same prompt: the inputs are the case's
inputs, the production output and the trace's scores are kept in the case metadata (a case is a
question to ask again, not an answer to copy), and the case id is derived from the trace id so
exporting the same trace twice never duplicates it.

Existing suite files are appended to in place when their ``cases:`` list is the last key (the
usual layout), so comments and formatting survive; otherwise the file is rewritten.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from llmops.errors import UserError
from llmops.tracing.store import SpanRow, TraceDetail

_TOP_KEY = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*:")


@dataclass(frozen=True)
class ExportResult:
    """What ``traces export`` did.

    Attributes:
        path: The suite file.
        created: True when the file did not exist before.
        added: Ids of the cases added.
        skipped: Ids already in the file (the trace was exported before).
        unusable: Trace ids without a prompt call that recorded its inputs.
    """

    path: Path
    created: bool
    added: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    unusable: list[str] = field(default_factory=list)


def case_generations(trace: TraceDetail, prompt_name: str | None = None) -> list[SpanRow]:
    """The calls of a trace that can become cases: prompt calls that recorded their inputs.

    Judge calls and regenerations (made by evaluators) are never cases.
    """
    out = []
    for g in trace.generations:
        if g.metadata.get("purpose") in ("judge", "regenerate") or not g.prompt_name:
            continue
        if prompt_name is not None and g.prompt_name != prompt_name:
            continue
        step = g.metadata.get("step")
        if isinstance(step, int) and step > 0:  # a later call of an agent loop: the first one is the case
            continue
        if isinstance(g.metadata.get("prompt_inputs"), dict):
            out.append(g)
    return out


def scripted_tools(trace: TraceDetail) -> dict[str, list[dict[str, Any]]]:
    """What the tools answered in a traced agent loop, as a case's scripted ``tools:``.

    Each tool call a generation asked for (its ``tool_calls`` metadata) is matched by id with the
    tool message a later generation sent; the result is scripted for those exact arguments.
    """
    calls: dict[str, tuple[str, Any]] = {}
    for g in trace.generations:
        for call in g.metadata.get("tool_calls") or []:
            if isinstance(call, dict) and call.get("id"):
                calls[str(call["id"])] = (str(call.get("name")), call.get("arguments"))
    tools: dict[str, list[dict[str, Any]]] = {}
    answered: set[str] = set()
    for g in trace.generations:
        for message in g.input if isinstance(g.input, list) else []:
            call_id = message.get("tool_call_id") if isinstance(message, dict) else None
            if message.get("role") != "tool" or call_id not in calls or call_id in answered:
                continue
            answered.add(call_id)
            name, arguments = calls[call_id]
            script: dict[str, Any] = {"result": message.get("content")}
            if isinstance(arguments, dict):
                script = {"when": arguments, **script}
            tools.setdefault(name, []).append(script)
    return tools


def case_from_generation(trace: TraceDetail, gen: SpanRow, index: int = 0) -> dict[str, Any]:
    """One suite case (as a YAML-ready dict) from a traced prompt call."""
    case_id = f"trace-{trace.trace_id[:12]}" + (f"-{index + 1}" if index else "")
    scores = {s.name: s.value for s in trace.scores if s.span_id in (None, gen.span_id)}
    metadata: dict[str, Any] = {
        "source": "trace", "trace_id": trace.trace_id, "span_id": gen.span_id, "prompt": gen.prompt_ref,
        "model": gen.resolved_model or gen.model,
        "traced_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(gen.start_time)),
    }
    if gen.output is not None:
        metadata["production_output"] = gen.output
    if gen.status == "error":
        metadata["error"] = gen.error
    if scores:
        metadata["scores"] = scores
    if gen.environment:
        metadata["environment"] = gen.environment
    tags = ["from-trace"] + (["error"] if gen.status == "error" else [])
    case: dict[str, Any] = {"id": case_id, "inputs": dict(gen.metadata["prompt_inputs"]), "metadata": metadata,
                            "tags": tags}
    tools = scripted_tools(trace)
    if tools:  # a traced agent loop replays offline with the tool results production saw
        case["tools"] = tools
    return case


def export_by_prompt(traces: Sequence[TraceDetail], path: Path | str, *, prompt: str | None = None,
                     prompt_name: str | None = None) -> list[ExportResult]:
    """Export the cases of ``traces`` into one suite per prompt (a suite runs one prompt).

    Cases of the prompt ``path`` already runs (for a new file: the first prompt by name) go to
    ``path``; each other prompt's cases go to ``<stem>-<prompt><suffix>`` beside it. A new suite
    pins the production prompt version and lists the production models under ``models:``.

    Args:
        traces: The selected traces.
        path: The suite file (``evalsets/FILE.yaml``).
        prompt: Prompt reference for the suite of ``prompt_name`` (``--prompt``).
        prompt_name: Only calls of this prompt become cases.

    Raises:
        UserError: as :func:`export_cases`.
    """
    path = Path(path)
    groups: dict[str, list[tuple[TraceDetail, list[SpanRow]]]] = {}
    unusable: list[str] = []
    for trace in traces:
        gens = case_generations(trace, prompt_name)
        if not gens:
            unusable.append(trace.trace_id)
        by_name: dict[str, list[SpanRow]] = {}
        for g in gens:
            by_name.setdefault(str(g.prompt_name), []).append(g)
        for name, calls in by_name.items():
            groups.setdefault(name, []).append((trace, calls))
    if not groups:
        raise UserError(f"none of the {len(traces)} selected trace(s) has a prompt call with recorded inputs",
                        key="--to", hint="traces of llmops.complete/acomplete calls record them; "
                                         "narrow the selection with --prompt")
    # Deterministic: the file's own prompt, else --prompt's, else the first name in order.
    home = _pinned_prompt(path) or (prompt_name if prompt_name in groups else min(groups))
    results: list[ExportResult] = []
    for name, members in groups.items():
        target = path if name == home else path.with_name(f"{path.stem}-{name}{path.suffix}")
        ref = prompt if prompt is not None and name == prompt_name else None
        result = export_cases([t for t, _ in members], target, prompt=ref, prompt_name=name)
        results.append(result)
    if unusable and results:
        results[0] = ExportResult(path=results[0].path, created=results[0].created, added=results[0].added,
                                  skipped=results[0].skipped, unusable=unusable)
    return results


def _pinned_prompt(path: Path) -> str | None:
    """The prompt name an existing suite file runs (None for a new file or a multi-prompt suite)."""
    if not path.exists():
        return None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, OSError, UnicodeDecodeError):
        return None
    ref = data.get("prompt") if isinstance(data, dict) else None
    return str(ref).split("@", 1)[0] if isinstance(ref, str) else None


def export_cases(traces: Sequence[TraceDetail], path: Path | str, *, prompt: str | None = None,
                 prompt_name: str | None = None) -> ExportResult:
    """Append the cases of ``traces`` to the suite at ``path`` (created if missing).

    Args:
        traces: The selected traces.
        path: The suite file (``evalsets/FILE.yaml``).
        prompt: Prompt reference for a new suite file (default: the first case's prompt).
        prompt_name: Only calls of this prompt become cases.

    Raises:
        UserError: when no selected trace has a usable prompt call, or the result does not
            validate as a suite (the file is then left unchanged).
    """
    path = Path(path)
    cases: list[dict[str, Any]] = []
    unusable: list[str] = []
    for trace in traces:
        gens = case_generations(trace, prompt_name)
        if not gens:
            unusable.append(trace.trace_id)
        cases += [case_from_generation(trace, g, i) for i, g in enumerate(gens)]
    if not cases:
        raise UserError(f"none of the {len(traces)} selected trace(s) has a prompt call with recorded inputs",
                        key="--to", hint="traces of llmops.complete/acomplete calls record them; "
                                         "narrow the selection with --prompt")
    created = not path.exists()
    original = None if created else path.read_text(encoding="utf-8")
    existing = _existing_ids(original) if original is not None else set()
    new = [c for c in cases if c["id"] not in existing]
    skipped = [c["id"] for c in cases if c["id"] in existing]
    if new:
        if original is None:
            ref = prompt or next(c["metadata"]["prompt"] for c in new)
            models = list(dict.fromkeys(str(c["metadata"]["model"]) for c in new if c["metadata"].get("model")))
            text = _new_suite(path.stem, ref, new, models)
        else:
            text = _append(original, new)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        try:
            from llmops.evalsets.loader import load_suite

            load_suite(path)
        except UserError:
            if original is None:
                path.unlink()
            else:
                path.write_text(original, encoding="utf-8")
            raise
    return ExportResult(path=path, created=created and bool(new), added=[c["id"] for c in new], skipped=skipped,
                        unusable=unusable)


def _existing_ids(text: str) -> set[str]:
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"cannot append to an invalid YAML file: {exc}") from None
    if not isinstance(data, dict):
        raise UserError("cannot append cases: the file is not a suite (a YAML mapping)")
    return {str(c.get("id")) for c in data.get("cases") or [] if isinstance(c, dict)}


def _dump_cases(cases: list[dict[str, Any]], indent: str) -> str:
    body = yaml.safe_dump(cases, sort_keys=False, allow_unicode=True, default_flow_style=False, width=110)
    return "".join(indent + line if line.strip() else line for line in body.splitlines(keepends=True))


def _new_suite(name: str, prompt: str, cases: list[dict[str, Any]], models: list[str] | None = None) -> str:
    # The production model(s), so the suite asks the model that gave the production answers.
    models_line = f"models: {yaml.safe_dump(models, default_flow_style=True, width=10_000).strip()}\n" \
        if models else ""
    header = (f"# Regression cases exported from production traces by `llmops traces export`.\n"
              f"# Add evaluators (and expected outputs) before gating on this suite.\n"
              f"name: {name}\nprompt: {prompt}\n{models_line}evaluators: []\ncases:\n")
    return header + _dump_cases(cases, "  ")


def _append(text: str, cases: list[dict[str, Any]]) -> str:
    lines = text.splitlines()
    top = [(i, m.group(1)) for i, line in enumerate(lines) if (m := _TOP_KEY.match(line))]
    if not top or top[-1][1] != "cases":
        if any(key == "cases" for _, key in top):
            return _rewrite(text, cases)
        return text.rstrip("\n") + "\ncases:\n" + _dump_cases(cases, "  ")
    index = top[-1][0]
    rest = lines[index + 1:]
    inline = lines[index].split(":", 1)[1].strip()
    if inline and not inline.startswith("#"):  # `cases: []` or a flow list: rewrite
        return _rewrite(text, cases)
    item = next((line for line in rest if line.lstrip().startswith("- ")), None)
    indent = item[: len(item) - len(item.lstrip())] if item is not None else "  "
    return text.rstrip("\n") + "\n" + _dump_cases(cases, indent)


def _rewrite(text: str, cases: list[dict[str, Any]]) -> str:
    data = yaml.safe_load(text) or {}
    data["cases"] = list(data.get("cases") or []) + cases
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=110)
