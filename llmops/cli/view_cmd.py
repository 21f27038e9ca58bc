"""``llmops view``: a local web app over runs, traces and prompts, with human review marks."""

from __future__ import annotations

import argparse
import contextlib
import sys

from llmops.cli._common import EXIT_OK, console, settings_from


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "view", help="browse runs, traces and prompts in a local web app; mark outputs for calibrate",
        description="Serve a web app over this project's run store, trace store and prompts: runs (live), "
                    "a run's case x variant matrix, two runs side by side, traces, prompt diffs, and human "
                    "review marks saved to review_path (what `llmops calibrate` reads). Binds 127.0.0.1; "
                    "any other --host needs the access token printed at start.")
    p.add_argument("--port", type=int, default=8484, help="port (0: any free port; default 8484)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1; anything else requires the access token)")
    p.add_argument("--open", action="store_true", dest="open_browser", help="open the app in a browser")
    p.add_argument("--read-only", action="store_true", help="turn review marks off (the app writes nothing)")
    p.add_argument("--token", default=None, metavar="TOKEN",
                   help="access token to require (default: generated for a non-loopback --host, none on loopback)")
    p.set_defaults(handler=_view)


def _view(args: argparse.Namespace) -> int:
    from llmops.view.app import is_loopback
    from llmops.view.queries import open_project
    from llmops.view.server import ServeInfo, serve

    project = open_project(settings=settings_from(args))
    err = console(stderr=True)

    def ready(info: ServeInfo) -> None:
        if not is_loopback(info.host):
            err.print(f"warning: --host {info.host} exposes your runs, traces and prompts beyond this machine; "
                      "every request needs the access token in the URL below", markup=False, highlight=False)
        print(f"llmops view: serving {project.root} at {info.url}", flush=True)
        if args.read_only:
            print("read-only: review marks are off", flush=True)
        print("press Ctrl+C to stop", flush=True)
        if args.open_browser:
            import webbrowser

            webbrowser.open(info.url)

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl+C is how the server stops
        serve(project, host=args.host, port=args.port, read_only=args.read_only, token=args.token, on_ready=ready)
    sys.stdout.flush()
    return EXIT_OK
