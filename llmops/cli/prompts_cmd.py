"""``llmops prompts list | show | render | diff | lock | check | label | push | pull``."""

from __future__ import annotations

import argparse

from llmops.cli._common import EXIT_FAILED, EXIT_OK, console, parse_inputs, settings_from


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("prompts", help="list, show, render, diff and lock versioned prompts")
    ps = p.add_subparsers(dest="prompts_command", metavar="ACTION", required=True)
    ps.add_parser("list", help="prompts with their versions and labels").set_defaults(handler=_list)
    source_help = "where labels resolve (default: the prompt_source setting; local needs no Langfuse)"
    show = ps.add_parser("show", help="print a prompt version's file")
    show.add_argument("ref")
    show.add_argument("--source", choices=["local", "langfuse"], default=None, help=source_help)
    show.set_defaults(handler=_show)
    render = ps.add_parser("render", help="render a prompt to chat messages")
    render.add_argument("ref")
    render.add_argument("--source", choices=["local", "langfuse"], default=None, help=source_help)
    render.add_argument("--input", "-i", action="append", metavar="KEY=VALUE")
    render.add_argument("--inputs-file", metavar="FILE")
    render.add_argument("--json", action="store_true", help="print the messages as JSON")
    render.set_defaults(handler=_render)
    diff = ps.add_parser("diff", help="unified diff of two prompt versions")
    diff.add_argument("a")
    diff.add_argument("b")
    diff.set_defaults(handler=_diff)
    lock = ps.add_parser("lock", help="record content hashes of new versions in prompts.lock.json")
    lock.add_argument("--force", action="store_true", help="also re-lock versions edited in place")
    lock.set_defaults(handler=_lock)
    ps.add_parser("check", help="fail (exit 1) if a locked version was edited in place").set_defaults(
        handler=_check)
    label = ps.add_parser("label", help="point a label (e.g. production) at a version")
    label.add_argument("name")
    label.add_argument("label")
    label.add_argument("version", type=int)
    label.set_defaults(handler=_label)
    push = ps.add_parser("push", help="create missing versions in Langfuse and move its labels to match")
    push.add_argument("names", nargs="*", metavar="NAME", help="prompts to push (default: all)")
    push.set_defaults(handler=_push)
    pull = ps.add_parser("pull", help="write Langfuse versions missing locally and copy its labels")
    pull.add_argument("names", nargs="*", metavar="NAME", help="prompts to pull (default: all in Langfuse)")
    pull.set_defaults(handler=_pull)


def _registry(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from llmops.prompts import PromptRegistry

    return PromptRegistry(settings_from(args).prompts_path)


def _list(args: argparse.Namespace) -> int:
    from rich.table import Table
    from rich.text import Text

    reg = _registry(args)
    table = Table("prompt", "versions", "labels", "description")
    for name in reg.names():
        versions = reg.versions(name)
        labels = ", ".join(f"{k}→v{v}" for k, v in sorted(reg.labels(name).items()))
        latest = reg.get(f"{name}@{versions[-1]}")
        # The description is free text from the prompt file: never read as markup.
        table.add_row(name, " ".join(f"v{v}" for v in versions), labels, Text(latest.meta.description))
    console().print(table)
    return EXIT_OK


def _load(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The prompt version ``args.ref`` names, by the same rule as ``complete`` and ``run``."""
    from llmops.api import load_prompt

    settings = settings_from(args)
    if args.source is not None:
        settings = settings.model_copy(update={"prompt_source": args.source})
    return load_prompt(args.ref, settings)


def _show(args: argparse.Namespace) -> int:
    from rich.markup import escape

    pv = _load(args)
    out = console()
    out.print(f"[bold]{pv.ref}[/]  {escape(str(pv.path))}  sha256:{pv.content_hash[:12]}", markup=True)
    out.print(pv.source, markup=False, highlight=False)
    return EXIT_OK


def _render(args: argparse.Namespace) -> int:
    import json

    pv = _load(args)
    messages = pv.render(parse_inputs(args.input, args.inputs_file))
    if args.json:
        print(json.dumps([m.to_dict() for m in messages], indent=2, ensure_ascii=False))
        return EXIT_OK
    out = console()
    for m in messages:
        out.print(f"[bold cyan]── {m.role} ──[/]", markup=True)
        out.print(m.content, markup=False, highlight=False)
    return EXIT_OK


def _diff(args: argparse.Namespace) -> int:
    import difflib

    reg = _registry(args)
    a, b = reg.get(args.a), reg.get(args.b)
    lines = difflib.unified_diff(a.source.splitlines(keepends=True), b.source.splitlines(keepends=True),
                                 fromfile=a.ref, tofile=b.ref)
    print("".join(lines), end="")
    return EXIT_OK


def _lock(args: argparse.Namespace) -> int:
    from llmops.prompts import update_lock

    added = update_lock(_registry(args), force=args.force)
    console().print(f"locked {len(added)} new version(s)" + (f": {', '.join(added)}" if added else ""))
    return EXIT_OK


def _check(args: argparse.Namespace) -> int:
    from llmops.prompts import check_lock

    result = check_lock(_registry(args))
    out = console(stderr=not result.ok)
    for ref in result.edited:
        out.print(f"[red]edited in place:[/] {ref} — restore it and add a new version file instead",
                  markup=True)
    for ref in result.missing:
        out.print(f"[red]locked version missing:[/] {ref}", markup=True)
    for ref in result.unlocked:
        out.print(f"[yellow]not locked yet:[/] {ref} (run `llmops prompts lock`)", markup=True)
    if result.ok:
        # A version that is not locked yet cannot have been "edited in place", so it does not
        # fail the check; say so instead of claiming every prompt matches the lock file.
        if result.unlocked:
            out.print(f"locked versions match the lock file; {len(result.unlocked)} version(s) "
                      "not locked yet are not checked")
        else:
            out.print("prompts match the lock file")
        return EXIT_OK
    return EXIT_FAILED


def _label(args: argparse.Namespace) -> int:
    _registry(args).set_label(args.name, args.label, args.version)
    console().print(f"{args.name}@{args.label} -> v{args.version}")
    return EXIT_OK


def _sync(args: argparse.Namespace, push: bool) -> int:
    from llmops.prompts import PromptRegistry
    from llmops.tracing import langfuse_api

    settings = settings_from(args)
    registry = PromptRegistry(settings.prompts_path)
    sync = langfuse_api.push_prompts if push else langfuse_api.pull_prompts
    result = sync(settings, registry, args.names or None)
    out = console()
    where = "in Langfuse" if push else "locally"
    for ref in result.created:
        out.print(f"created {ref} {where}")
    for move in result.labels:
        out.print(f"label {move}")
    for problem in result.conflicts:
        out.print(f"[red]conflict:[/] {problem}", markup=True)
    if not (result.created or result.labels or result.conflicts):
        out.print(f"in sync ({len(result.unchanged)} version(s))")
    return EXIT_FAILED if result.conflicts else EXIT_OK


def _push(args: argparse.Namespace) -> int:
    return _sync(args, push=True)


def _pull(args: argparse.Namespace) -> int:
    return _sync(args, push=False)
