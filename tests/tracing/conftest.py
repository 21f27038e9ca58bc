"""Fixtures for tracing tests: a Langfuse receiver, settings pointing at it, a primed cache."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llmops.config import Settings, load_settings
from llmops.testing.langfuse_receiver import LangfuseReceiver
from llmops.tracing import Tracer, create_tracer


@pytest.fixture
def receiver() -> Iterator[LangfuseReceiver]:
    # The SDK keeps one client per public key in the process: a fresh key per test keeps
    # every test's client pointed at its own receiver.
    with LangfuseReceiver(public_key=f"pk-lf-{uuid.uuid4().hex[:12]}", secret_key="sk-lf-test") as r:
        yield r


@pytest.fixture
def lf_settings(project: Path, receiver: LangfuseReceiver, monkeypatch: pytest.MonkeyPatch) -> Settings:
    for key, value in receiver.env().items():
        monkeypatch.setenv(key, value)
    return load_settings(project)


@pytest.fixture
def tracers() -> Iterator[list[Tracer]]:
    """Tracers created by a test; shut down (bounded) at its end."""
    made: list[Tracer] = []
    yield made
    for t in made:
        t.shutdown(timeout_s=3)


@pytest.fixture
def make_tracer(tracers: list[Tracer]) -> Any:
    def make(settings: Settings, **kwargs: Any) -> Tracer:
        kwargs.setdefault("batch_interval_s", 0.01)
        tracer = create_tracer(settings, **kwargs)
        tracers.append(tracer)
        return tracer

    return make
