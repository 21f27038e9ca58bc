from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from view_helpers import answers, make_run


@pytest.fixture
def two_runs(project: Path, settings: Any, client: Any) -> tuple[Any, Any]:
    first = make_run(project, settings, client)
    second = make_run(project, settings, client,
                      responder=lambda m, p: "yes now" if "q3" in m[-1]["content"] else answers(m, p))
    return first, second


@pytest.fixture
def view_project(settings: Any, two_runs: Any) -> Iterator[Any]:
    from llmops.view import open_project

    p = open_project(settings=settings)
    yield p
    p.close()


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture
def browser() -> Iterator[Any]:
    """Debian's headless chromium driven by Playwright, as tests/reports does (never a downloaded browser)."""
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: .ci/run must install Debian's chromium package")
        pytest.skip("chromium not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()
