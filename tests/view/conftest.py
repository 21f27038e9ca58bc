from __future__ import annotations

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
