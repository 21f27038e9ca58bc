"""``llmops datasets push | pull | snapshot``: suites to Langfuse datasets and back."""

from __future__ import annotations

import argparse

from llmops.cli._common import EXIT_OK, console, settings_from


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("datasets", help="push a suite's cases to a Langfuse dataset, or pull one as cases")
    ds = p.add_subparsers(dest="datasets_command", metavar="ACTION", required=True)
    push = ds.add_parser("push", help="create or update a Langfuse dataset from a suite's cases (ids stable)")
    push.add_argument("suite", metavar="SUITE", help="suite file")
    push.add_argument("--name", metavar="NAME", help="dataset name (default: the suite's name)")
    push.set_defaults(handler=_push)
    pull = ds.add_parser("pull", help="write a Langfuse dataset's items as a JSONL cases file")
    pull.add_argument("name", metavar="NAME", help="dataset name")
    pull.add_argument("--to", required=True, metavar="FILE.jsonl", help="cases file to write (for cases_file:)")
    pull.add_argument("--version", metavar="WHEN", help="the dataset as it was then (ISO time, UTC)")
    pull.set_defaults(handler=_pull)
    snap = ds.add_parser("snapshot", help="fetch a cases_from: suite's Langfuse dataset into its snapshot file")
    snap.add_argument("suite", metavar="SUITE", help="suite file with cases_from:")
    snap.set_defaults(handler=_snapshot)


def _push(args: argparse.Namespace) -> int:
    from llmops.tracing.datasets import push_dataset

    result = push_dataset(settings_from(args), args.suite, name=args.name)
    verb = "created" if result.created else "updated"
    console().print(f"{verb} Langfuse dataset {result.dataset}: {len(result.items)} item(s) upserted", markup=False)
    return EXIT_OK


def _snapshot(args: argparse.Namespace) -> int:
    from llmops.tracing.datasets import snapshot_suite

    path, pin = snapshot_suite(settings_from(args), args.suite)
    console().print(f"{path}: {len(pin.items)} item(s) of Langfuse dataset {pin.name} (version {pin.version}, "
                    f"content {pin.content_hash[:12]}); commit it so runs without Langfuse use the same cases",
                    markup=False)
    return EXIT_OK


def _pull(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from llmops.errors import UserError
    from llmops.tracing.datasets import pull_dataset

    version = None
    if args.version:
        try:
            version = datetime.fromisoformat(args.version.replace("Z", "+00:00"))
        except ValueError:
            raise UserError(f"--version expects an ISO time, got '{args.version}'", key="--version") from None
        if version.tzinfo is None:
            version = version.replace(tzinfo=UTC)
    result = pull_dataset(settings_from(args), args.name, args.to, version=version)
    console().print(f"wrote {result.cases} case(s) of {result.dataset} to {result.path} "
                    f"(sha256 {result.content_hash[:12]}); reference it with `cases_file: {result.path.name}`",
                    markup=False)
    return EXIT_OK
