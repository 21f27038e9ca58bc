"""``llmops traces list | show | export | score | drift | status``: the trace store from the shell."""

from __future__ import annotations

import argparse
import json
import time
from typing import TYPE_CHECKING, Any

from llmops.cli._common import EXIT_FAILED, EXIT_OK, EXIT_UNAVAILABLE, console, positive_int, settings_from

if TYPE_CHECKING:
    from llmops.config import Settings
    from llmops.tracing.store import TraceStore


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("traces", help="list, show, export, score and watch traced LLM calls")
    ts = p.add_subparsers(dest="traces_command", metavar="ACTION", required=True)

    def selection(q: argparse.ArgumentParser) -> None:
        q.add_argument("--prompt", metavar="REF", help="only calls of this prompt (name, name@3, name@label)")
        q.add_argument("--since", metavar="WHEN", help="only traces after WHEN (24h, 7d or a date)")
        q.add_argument("--until", metavar="WHEN", help="only traces before WHEN")

    ls = ts.add_parser("list", help="recent traces, newest first")
    selection(ls)
    ls.add_argument("--errors", action="store_true", help="only traces with a failed span")
    ls.add_argument("--tag", help="only traces with this tag (e.g. run:20260101-...)")
    ls.add_argument("--limit", type=positive_int, default=30, metavar="N")
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.set_defaults(handler=_list)

    show = ts.add_parser("show", help="a trace as a tree with timings, tokens, cost and scores")
    show.add_argument("trace_id", metavar="ID", help="trace id, a unique prefix, or 'latest'")
    show.add_argument("--full", action="store_true", help="print inputs and outputs in full")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(handler=_show)

    ex = ts.add_parser("export", help="turn selected traces into cases of a suite file")
    target = ex.add_mutually_exclusive_group(required=True)
    target.add_argument("--to", metavar="FILE", help="suite file, e.g. evalsets/regressions.yaml")
    target.add_argument("--to-dataset", metavar="NAME",
                        help="a Langfuse dataset: each call becomes an item linked to its source trace")
    selection(ex)
    ex.add_argument("--ids", nargs="+", metavar="ID", help="these traces (ids or unique prefixes)")
    ex.add_argument("--errors", action="store_true", help="only traces with a failed call")
    ex.add_argument("--below", action="append", metavar="NAME=VALUE",
                    help="only traces whose score NAME is below VALUE (repeatable; local store)")
    ex.add_argument("--limit", type=positive_int, default=50, metavar="N")
    ex.add_argument("--source", choices=["local", "langfuse"], default="local")
    ex.set_defaults(handler=_export)

    sc = ts.add_parser("score", help="run evaluators over a sample of production calls, write the scores back")
    sc.add_argument("--evaluator", "-e", action="append", default=[], metavar="KIND[:k=v,...]",
                    help="evaluator to run, e.g. length:max=200 (repeatable)")
    sc.add_argument("--suite", metavar="FILE", help="use the evaluators of this suite file")
    selection(sc)
    sc.add_argument("--sample", type=positive_int, default=50, metavar="N", help="calls to score (random, seeded)")
    sc.add_argument("--seed", type=int, default=0)
    sc.add_argument("--source", choices=["local", "langfuse"], default="local")
    sc.add_argument("--judge-model", metavar="MODEL", help="model for judge evaluators")
    sc.add_argument("--eval-runs", action="store_true",
                    help="also score llmops's own eval-run calls (default: production calls only)")
    sc.add_argument("--json", action="store_true", help="print JSON")
    sc.set_defaults(handler=_score)

    dr = ts.add_parser("drift", help="quality, latency, cost and error rate per prompt version over time")
    dr.add_argument("--prompt", metavar="REF", help="only this prompt (name or name@version)")
    dr.add_argument("--window", default="1d", metavar="DURATION", help="window length (default 1d)")
    dr.add_argument("--windows", type=int, default=4, metavar="N", help="number of windows (default 4)")
    dr.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    dr.add_argument("--environment", help="only calls from this environment")
    dr.add_argument("--eval-runs", action="store_true",
                    help="also count llmops's own eval-run calls (default: production calls only)")
    dr.add_argument("--check", action="store_true", help="exit 1 if a change for the worse is flagged")
    dr.add_argument("--json", action="store_true", help="print JSON")
    dr.set_defaults(handler=_drift)

    st = ts.add_parser("status", help="where traces go, and what the local store holds")
    st.set_defaults(handler=_status)

    pu = ts.add_parser("push", help="send spans Langfuse never acknowledged (from the local store) again")
    pu.add_argument("--timeout", type=float, default=10.0, metavar="S",
                    help="wait at most S seconds for Langfuse (default 10)")
    pu.add_argument("--limit", type=positive_int, default=None, metavar="N", help="send at most N spans, oldest first")
    pu.set_defaults(handler=_push)


# ---- helpers -------------------------------------------------------------------------------------
def _store(settings: Settings) -> TraceStore:
    from llmops.tracing.store import TraceStore

    return TraceStore(settings.path(settings.trace_path))


def _when(text: str | None) -> float | None:
    from llmops.tracing.monitor import parse_since

    return parse_since(text) if text else None


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


def _local_time(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _preview(value: Any, full: bool, width: int = 100) -> str:
    if value is None:
        return ""
    if isinstance(value, list) and value and all(isinstance(m, dict) and "content" in m for m in value):
        text = " | ".join(f"{m.get('role')}: {m.get('content')}" for m in value)
    else:
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = text.replace("\n", " ⏎ ")
    return text if full or len(text) <= width else text[: width - 1] + "…"


# ---- list / show -----------------------------------------------------------------------------------
def _list(args: argparse.Namespace) -> int:
    from rich.markup import escape
    from rich.table import Column, Table

    from llmops.tracing.monitor import prompt_filter

    settings = settings_from(args)
    store = _store(settings)
    name, version = prompt_filter(args.prompt, settings)
    traces = store.traces(prompt_name=name, prompt_version=version, since=_when(args.since),
                          until=_when(args.until), errors_only=args.errors, tag=args.tag,
                          limit=args.limit) if store.exists() else []
    if args.json:
        print(json.dumps([t.model_dump() for t in traces], indent=2, ensure_ascii=False))
        return EXIT_OK
    out = console()
    if not traces:
        out.print(f"no traces in {store.path}" + (" matching the filters" if store.exists() else ""))
        return EXIT_OK
    table = Table(Column("trace", no_wrap=True, min_width=12), Column("started", overflow="fold"),
                  Column("name", overflow="fold"), "duration", "calls", "tokens", "cost",
                  Column("prompts", overflow="fold"), Column("scores", overflow="fold"))
    for t in traces:
        scores = ", ".join(f"{k}={v:.2f}" if v is not None else f"{k}=–" for k, v in t.scores.items())
        err = f" [red]✗{t.errors}[/]" if t.errors else ""
        # Names, prompts and score names are user data: escaped so brackets are never read as markup.
        table.add_row(t.trace_id[:12], _local_time(t.start_time), escape(t.name) + err, _ms(t.duration_s),
                      str(t.generations), f"{t.prompt_tokens}+{t.completion_tokens}", f"${t.cost_usd:.6f}",
                      escape(", ".join(t.prompts)), escape(scores))
    out.print(table)
    return EXIT_OK


def _show(args: argparse.Namespace) -> int:
    from rich.markup import escape
    from rich.tree import Tree

    settings = settings_from(args)
    detail = _store(settings).trace(args.trace_id)
    if args.json:
        print(detail.model_dump_json(indent=2))
        return EXIT_OK
    out = console()
    root = detail.root
    scores_by_span: dict[str | None, list[str]] = {}
    for s in detail.scores:
        value = f"{s.value:.2f}" if s.value is not None else s.status
        scores_by_span.setdefault(s.span_id, []).append(f"{s.name}={value}")

    def label(span: Any) -> str:
        offset = span.start_time - root.start_time
        parts = [f"[bold]{escape(span.name)}[/]", f"[dim]{span.kind}[/]", _ms(span.duration_s),
                 f"[dim]+{_ms(offset)}[/]"]
        if span.kind == "generation":
            parts.append(escape(span.resolved_model or span.model or ""))
            if span.prompt_tokens is not None:
                parts.append(f"{span.prompt_tokens}→{span.completion_tokens} tok")
            if span.cost_usd is not None:
                parts.append(f"${span.cost_usd:.6f}")
            if span.cached:
                parts.append("[cyan]cache hit[/]")
            if span.prompt_ref:
                parts.append(f"[magenta]{escape(span.prompt_ref)}[/] [dim]{(span.prompt_hash or '')[:12]}[/]")
        if span.status == "error":
            code = f" HTTP {span.status_code}" if span.status_code else ""
            parts.append(f"[red]✗ {escape(span.error_type or 'error')}{code}: {escape(span.error or '')}[/]")
        if span.span_id in scores_by_span:
            parts.append("[green]" + escape(", ".join(scores_by_span[span.span_id])) + "[/]")
        meta = span.metadata or {}
        if span.kind == "generation" and isinstance(meta.get("step"), int):
            parts.insert(1, f"[dim]step {meta['step'] + 1}[/]")  # one model call of an agent loop
        if span.kind == "generation" and isinstance(meta.get("ttft_s"), int | float):
            parts.append(f"ttft {_ms(float(meta['ttft_s']))}")
        text = "  ".join(p for p in parts if p)
        calls = meta.get("tool_calls") if span.kind == "generation" else None
        for call in calls if isinstance(calls, list) else []:  # the trajectory: what the model asked for
            if isinstance(call, dict):
                args_text = escape(str(call.get("raw_arguments"))[:200])
                text += f"\n[yellow]→ {escape(str(call.get('name')))}({args_text})[/]"
        if span.kind in ("generation", "tool") or args.full:  # a tool's arguments and result: the trajectory
            for what, value in (("in", span.input), ("out", span.output)):
                preview = _preview(value, args.full)
                if preview:
                    text += f"\n[dim]{what}:[/] {escape(preview)}"
        return text

    attrs = [f"{k}={v}" for k, v in (("user", root.user_id), ("session", root.session_id),
                                     ("env", root.environment), ("release", root.release)) if v]
    if root.tags:
        attrs.append("tags=" + ",".join(root.tags))
    header = f"trace {detail.trace_id}  {_local_time(root.start_time)}  " + "  ".join(attrs)
    tree = Tree(escape(header))

    def add(node: Tree, span: Any) -> None:
        child = node.add(label(span))
        for c in detail.children(span.span_id):
            add(child, c)

    ids = {s.span_id for s in detail.spans}
    for top in [s for s in detail.spans if s.parent_id is None or s.parent_id not in ids]:
        add(tree, top)
    out.print(tree)
    trace_scores = scores_by_span.get(None, [])
    if trace_scores:
        out.print("[bold]scores:[/] " + escape(", ".join(trace_scores)), markup=True)
    return EXIT_OK


# ---- export ------------------------------------------------------------------------------------
def _export(args: argparse.Namespace) -> int:
    from llmops.errors import UserError
    from llmops.tracing.export import export_by_prompt
    from llmops.tracing.monitor import prompt_filter
    from llmops.tracing.selection import select_traces

    settings = settings_from(args)
    name, version = prompt_filter(args.prompt, settings)
    traces = select_traces(settings, source=args.source, ids=args.ids, prompt_name=name, prompt_version=version,
                           since=_when(args.since), until=_when(args.until), errors_only=args.errors,
                           below=args.below or [], limit=args.limit)
    if not traces:
        raise UserError("no traces match the selection", hint="`llmops traces list` shows what is stored")
    out = console()
    if args.to_dataset:
        from llmops.tracing.datasets import traces_to_dataset

        pushed = traces_to_dataset(settings, traces, args.to_dataset, prompt_name=name)
        verb = "created" if pushed.created else "updated"
        out.print(f"{verb} Langfuse dataset {pushed.dataset}: {len(pushed.items)} item(s) linked to their "
                  "source traces", markup=False)
        return EXIT_OK
    ref = f"{name}@{version}" if name and version is not None else None
    # One suite per prompt: a suite runs one prompt, and cases of another would run on the wrong one.
    for result in export_by_prompt(traces, args.to, prompt=ref, prompt_name=name):
        verb = "created" if result.created else "updated"
        out.print(f"{verb} {result.path}: {len(result.added)} case(s) added"
                  + (f", {len(result.skipped)} already there" if result.skipped else "")
                  + (f", {len(result.unusable)} trace(s) without a prompt call" if result.unusable else ""),
                  markup=False)
    return EXIT_OK


# ---- score -------------------------------------------------------------------------------------
def _parse_evaluator(text: str) -> tuple[str, dict[str, Any]]:
    from llmops.errors import UserError

    kind, _, rest = text.partition(":")
    params: dict[str, Any] = {}
    for pair in filter(None, rest.split(",")):
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise UserError(f"--evaluator expects KIND[:key=value,...], got '{text}'", key="--evaluator")
        try:
            params[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            params[key.strip()] = raw
    return kind.strip(), params


def _score(args: argparse.Namespace) -> int:
    from llmops._async import run_sync
    from llmops.errors import UserError
    from llmops.evaluators.base import Evaluator, create_evaluator
    from llmops.llm.client import LLMClient
    from llmops.tracing.monitor import ascore_calls, prompt_filter, score_rows, select_calls
    from llmops.tracing.selection import call_pool, write_back

    settings = settings_from(args)
    evaluators: list[Evaluator] = []
    if args.suite:
        from llmops.evalsets.loader import load_suite

        suite = load_suite(args.suite).suite
        evaluators += [create_evaluator(s.kind, name=s.name, threshold=s.threshold, **s.params)
                       for s in suite.evaluators]
    for text in args.evaluator:
        kind, params = _parse_evaluator(text)
        evaluators.append(create_evaluator(kind, **params))
    if not evaluators:
        raise UserError("no evaluator given", hint="use --evaluator KIND (repeatable) or --suite FILE")
    name, version = prompt_filter(args.prompt, settings)
    since, until = _when(args.since), _when(args.until)
    pool = call_pool(settings, source=args.source, prompt_name=name, prompt_version=version, since=since,
                     until=until, limit=max(500, 10 * args.sample))
    calls = select_calls(pool, sample=args.sample, seed=args.seed, include_eval_runs=args.eval_runs)
    if not calls:
        raise UserError("no successful prompt calls match the selection")
    # Judge calls are not traced: scoring production must not add traces to production.
    client = LLMClient(settings)
    scored = run_sync(ascore_calls(calls, evaluators, client=client,
                                   judge_model=args.judge_model or settings.judge_model, seed=args.seed))
    rows = score_rows(scored)
    sent_to = write_back(settings, rows, source=args.source)
    if args.json:
        print(json.dumps([r.model_dump() for r in rows], indent=2, ensure_ascii=False))
        return EXIT_OK
    _print_score_summary(rows, len(calls), sent_to)
    return EXIT_OK


def _print_score_summary(rows: list[Any], calls: int, sent_to: list[str]) -> None:
    from rich.markup import escape
    from rich.table import Table

    by_name: dict[str, list[Any]] = {}
    for r in rows:
        by_name.setdefault(r.name, []).append(r)
    table = Table("evaluator", "mean", "pass", "fail", "unmeasured", "error")
    for name, items in by_name.items():
        values = [r.value for r in items if r.value is not None and r.status in ("pass", "fail")]
        mean = f"{sum(values) / len(values):.3f}" if values else "–"
        counts = [sum(r.status == s for r in items) for s in ("pass", "fail", "unmeasured", "error")]
        table.add_row(escape(name), mean, *map(str, counts))
    out = console()
    out.print(f"scored {calls} call(s); scores written to {' and '.join(sent_to)}")
    out.print(table)


# ---- drift -------------------------------------------------------------------------------------
def _drift(args: argparse.Namespace) -> int:
    from rich.markup import escape
    from rich.table import Table

    from llmops.tracing.monitor import drift, format_window, parse_duration, prompt_filter

    settings = settings_from(args)
    store = _store(settings)
    name, version = prompt_filter(args.prompt, settings)
    window = parse_duration(args.window)
    if not store.exists():
        console().print(f"no traces in {store.path}")
        return EXIT_OK
    report = drift(store, prompt_name=name, prompt_version=version, window_s=window, windows=args.windows,
                   alpha=args.alpha, environment=args.environment, include_eval_runs=args.eval_runs)
    worse = [f for f in report.flags if f.direction == "worse"]
    if args.json:
        from dataclasses import asdict

        data = {"window_s": report.window_s, "alpha": report.alpha,
                "versions": [asdict(v) for v in report.versions]}
        print(json.dumps(data, indent=2, ensure_ascii=False))
        return EXIT_FAILED if args.check and worse else EXIT_OK
    out = console()
    if not report.versions:
        out.print("no prompt calls in the selected windows")
        return EXIT_OK
    names = sorted({q for v in report.versions for w in v.windows for q in w.quality})
    for v in report.versions:
        table = Table("window", "calls", "errors", "p50 latency", "mean cost", *names, title=v.prompt)
        for w in v.windows:
            quality = [f"{w.quality[q]:.3f} (n={w.quality_n[q]})" if w.quality.get(q) is not None else "–"
                       for q in names]
            table.add_row(format_window(w.start, report.window_s), str(w.calls),
                          f"{w.error_rate:.1%}" if w.error_rate is not None else "–",
                          _ms(w.latency_p50_s) if w.latency_p50_s is not None else "–",
                          f"${w.cost_mean_usd:.6f}" if w.cost_mean_usd is not None else "–", *quality)
        out.print(table)
        for f in v.flags:
            colour = "red" if f.direction == "worse" else "green"
            out.print(f"  [{colour}]{f.direction}:[/] {escape(f.metric)} {f.before:.4g} → {f.after:.4g} "
                      f"(p={f.p_value:.3g}, last window vs previous)", markup=True)
    if not report.flags:
        out.print(f"no significant change between the last two windows (alpha={report.alpha})")
    return EXIT_FAILED if args.check and worse else EXIT_OK


def _status(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    store = _store(settings)
    out = console()
    mode = settings.tracing
    lf = settings.langfuse
    target = "off" if mode == "off" else ("Langfuse " + lf.host + " + local store" if lf and mode != "local"
                                          else "local store only")
    out.print(f"tracing: {mode} → {target}")
    if not store.exists():
        out.print(f"local store: {store.path} (empty)", markup=False)
        return EXIT_OK
    traces, spans = store.count()
    out.print(f"local store: {store.path} ({traces} traces, {spans} spans)", markup=False)
    deliveries = store.deliveries()
    if deliveries:
        last = deliveries[0]
        out.print(f"last export to {last.exporter} ({_local_time(last.ended)}): {last.delivered} of {last.spans} "
                  "span(s) delivered", markup=False)
        missed = [d for d in deliveries if d.undelivered]
        if missed:
            out.print(f"[yellow]{sum(d.undelivered for d in missed)} span(s) not delivered[/] in the last "
                      f"{len(deliveries)} traced run(s)", markup=True)
            # The cause each process recorded, newest first: interpreter shutdown, a refused
            # connection and a rejected export need different fixes.
            for d in missed:
                out.print(f"  {_local_time(d.ended)}: {d.undelivered} of {d.spans}: {d.cause or 'cause not recorded'}",
                          markup=False)
    waiting = store.undelivered_count()
    if waiting:
        out.print(f"{waiting} span(s) in the local store wait for delivery: `llmops traces push` sends them",
                  markup=False)
    return EXIT_OK


def _push(args: argparse.Namespace) -> int:
    from llmops.errors import UserError
    from llmops.tracing.resend import push_undelivered

    if args.timeout <= 0 or args.timeout != args.timeout or args.timeout == float("inf"):
        raise UserError(f"--timeout must be a positive number of seconds, got {args.timeout}", key="--timeout")
    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit must be at least 1, got {args.limit}", key="--limit")
    settings = settings_from(args)
    result = push_undelivered(settings, timeout_s=args.timeout, limit=args.limit)
    out = console()
    if not result.sent:
        out.print("nothing to push: every span in the local store was delivered", markup=False)
        return EXIT_OK
    out.print(f"pushed {result.sent} span(s): {result.delivered} delivered, {result.remaining} still waiting",
              markup=False)
    if result.cause:
        out.print(f"not delivered: {result.cause}", markup=False)
        return EXIT_UNAVAILABLE
    return EXIT_OK
