"""``llmops complete REF --input k=v``: render a prompt, call a model, print the answer."""

from __future__ import annotations

import argparse

from llmops.cli._common import EXIT_OK, add_model_options, console, parse_inputs, settings_from


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("complete", help="render a prompt and call a model with it")
    p.add_argument("ref", help="prompt reference: name, name@3 or name@label")
    p.add_argument("--input", "-i", action="append", metavar="KEY=VALUE", help="template input (repeatable)")
    p.add_argument("--inputs-file", metavar="FILE", help="JSON object of inputs")
    p.add_argument("--json", action="store_true", help="print the Completion as JSON")
    p.add_argument("--source", choices=["local", "langfuse"], default=None,
                   help="where prompt labels resolve (default: the prompt_source setting)")
    add_model_options(p)
    p.set_defaults(handler=_complete)


def _complete(args: argparse.Namespace) -> int:
    import json

    from llmops.api import complete, default_client

    settings = settings_from(args)
    if args.source is not None:
        settings = settings.model_copy(update={"prompt_source": args.source})
    inputs = parse_inputs(args.input, args.inputs_file)
    result = complete(args.ref, inputs, model=args.model, client=default_client(settings))
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
        return EXIT_OK
    out = console()
    out.print(result.text, markup=False, highlight=False)
    cache = " (cache hit)" if result.cached else ""
    out.print(
        f"[dim]{result.resolved_model} · {result.usage.prompt_tokens}+{result.usage.completion_tokens} tokens"
        f" · ${result.cost_usd:.6f} · {result.latency_s * 1000:.0f} ms{cache}[/]", markup=True)
    return EXIT_OK
