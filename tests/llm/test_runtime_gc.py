"""The CLI imports LiteLLM with the garbage collector paused, then freezes the heap; a library user's
process keeps Python's defaults. Each case runs in a process of its own (litellm is imported once)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

IMPORT_LITELLM = """
import gc, json, sys
from llmops import _runtime
_runtime.freeze_heap_after_import = sys.argv[1] == "cli"
from llmops.llm.loader import load_litellm
runs = []  # collections from here on: during LiteLLM's import
gc.callbacks.append(lambda phase, info: phase == "start" and runs.append(info["generation"]))
load_litellm()
print(json.dumps({"collections": len(runs), "enabled": gc.isenabled(), "frozen": gc.get_freeze_count()}))
"""


def _import_litellm(mode: str) -> dict[str, int]:
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    out = subprocess.run([sys.executable, "-c", IMPORT_LITELLM, mode], capture_output=True, text=True,
                         timeout=180, env=env)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.mark.parametrize("mode", ["cli", "library"])
def test_litellm_import_and_the_collector(mode: str) -> None:
    seen = _import_litellm(mode)
    assert seen["enabled"]  # the collector always runs again afterwards
    if mode == "cli":
        assert seen["collections"] == 0  # none of the import's full collections over a growing heap
        assert seen["frozen"] > 100_000  # LiteLLM's objects are out of every later collection
    else:
        assert seen["collections"] > 0 and seen["frozen"] == 0  # Python's defaults, untouched
