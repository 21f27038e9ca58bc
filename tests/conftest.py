"""Test isolation: no real network, no user config, a fresh scripted fake provider per test."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# litellm would fetch its price map and ragas would send telemetry at import: never in tests.
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
os.environ["RAGAS_DO_NOT_TRACK"] = "true"
os.environ["DO_NOT_TRACK"] = "1"
os.environ["HF_HUB_OFFLINE"] = "1"

REPO = Path(__file__).resolve().parent.parent
_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _allowed(address: object) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX
        return True
    if isinstance(address, tuple) and address:
        host = str(address[0])
        return host in ("localhost", "::1") or host.startswith("127.") or host == "0.0.0.0"
    return False


def _guarded_connect(self: socket.socket, address: object) -> None:
    if not _allowed(address):
        raise ConnectionRefusedError(f"tests may not reach the network: {address!r} (mark the test live)")
    _real_connect(self, address)  # type: ignore[arg-type]


def _guarded_connect_ex(self: socket.socket, address: object) -> int:
    if not _allowed(address):
        raise ConnectionRefusedError(f"tests may not reach the network: {address!r} (mark the test live)")
    return _real_connect_ex(self, address)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _no_network(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.node.get_closest_marker("live"):
        return
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", _guarded_connect_ex)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No LLMOPS_* or provider keys leak in from the developer's shell; fake scripts start empty."""
    for name in list(os.environ):
        if name.startswith(("LLMOPS_", "LANGFUSE_")) or name.endswith("_API_KEY"):
            monkeypatch.delenv(name, raising=False)
    from llmops.api import set_default_client
    from llmops.llm import fake

    fake.reset()
    set_default_client(None)
    yield
    fake.reset()
    set_default_client(None)
    # The default client feeds a process-wide tracer per project: stop it with its project.
    from llmops.tracing.tracer import reset_tracing

    reset_tracing()


PYPROJECT = """\
[project]
name = "example"
version = "0"

[tool.llmops]
default_model = "fake/echo"
judge_model = "fake/judge"
cache = "read-write"
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary project: pyproject.toml with [tool.llmops], a copy of the example prompts."""
    (tmp_path / "pyproject.toml").write_text(PYPROJECT, encoding="utf-8")
    shutil.copytree(REPO / "prompts", tmp_path / "prompts")
    (tmp_path / "evalsets").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def settings(project: Path):  # type: ignore[no-untyped-def]
    from llmops.config import load_settings

    return load_settings(project)


@pytest.fixture
def client(settings):  # type: ignore[no-untyped-def]
    from llmops.llm.client import LLMClient
    from llmops.llm.retry import RetryPolicy

    return LLMClient(settings, retry=RetryPolicy(max_retries=3, base_delay_s=0.01, max_delay_s=0.2,
                                                 max_total_s=5))


@pytest.fixture(autouse=True)
def _no_leaked_event_loop(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test must not leave an event loop marked as running in this thread (it breaks the next one)."""
    import asyncio.events

    yield
    leaked = asyncio.events._get_running_loop()
    if leaked is not None:
        asyncio.events._set_running_loop(None)
        pytest.fail(f"{request.node.nodeid} left an event loop running in the main thread")


# ---- tests/reliability's counts, in the suite's own output (also under pytest-xdist) -------------
_gathered: Counter[str] = Counter()


def _reliability() -> Any:
    return sys.modules.get("reliability_helpers")  # imported by the reliability tests that ran, if any


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Workers hand their counts to the controller; the controller (or a lone process) checks them."""
    module = _reliability()
    counts: Counter[str] = module.COUNTS if module is not None else Counter()
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker
        workeroutput["reliability_counts"] = json.dumps(dict(counts))
        return
    _gathered.update(counts)
    if _gathered and session.exitstatus == pytest.ExitCode.OK and _count_problems():
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """(pytest-xdist, on the controller) a worker finished: add its counts."""
    data = getattr(node, "workeroutput", {}).get("reliability_counts")
    if data:
        _gathered.update(json.loads(data))


def _count_problems() -> list[str]:
    module = _reliability()
    if module is None:  # a controller does not import the tests' helpers: load the rules by path
        sys.path.insert(0, str(Path(__file__).parent / "reliability"))
        import reliability_helpers as module  # type: ignore[no-redef]
    problems: list[str] = module.count_problems(_gathered)
    return problems


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print what the reliability tests tried and found, and any count that breaks its rule."""
    if not _gathered:
        return
    terminalreporter.section("reliability counts")
    for name in sorted(_gathered):
        terminalreporter.write_line(f"{name}: {_gathered[name]}")
    for problem in _count_problems():
        terminalreporter.write_line(f"COUNT RULE BROKEN: {problem}", red=True)
