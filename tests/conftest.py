"""Test isolation: no real network, no user config, a fresh scripted fake provider per test."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

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
