"""The reliability counts are in the suite's own output and checked, also when pytest-xdist runs it.

Each worker process counts what its tests tried and found; the controller gathers the workers'
counts, prints them under "reliability counts" and fails the session when a count breaks its
rule (a secret found, a bad input without exit 2, a span sent and not delivered, ...).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from reliability_helpers import count_problems

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("workers", ["0", "2"])
def test_counts_are_gathered_from_every_worker_and_printed(workers: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "LLMOPS_"))}
    env["COLUMNS"] = "80"
    out = subprocess.run([sys.executable, "-m", "pytest", "tests/reliability/test_bad_input.py", "-k",
                          "odd_digits", "-n", workers, "-p", "no:cacheprovider", "-q"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "reliability counts" in out.stdout, out.stdout[-3000:]
    # The five odd-digit cases, each tried once, wherever it ran.
    assert "bad inputs tried: 5\n" in out.stdout and "bad inputs: exit 2 with a location: 5\n" in out.stdout
    assert "COUNT RULE BROKEN" not in out.stdout


def test_count_rules() -> None:
    fine = Counter({"secrets found in artifacts": 0, "bad inputs tried": 3, "bad inputs: exit 2 with a location": 3,
                    "short processes: spans sent": 8, "short processes: spans delivered": 8})
    assert count_problems(fine) == [] and count_problems(Counter()) == []
    broken = fine + Counter({"secrets found in artifacts": 1, "short processes: spans sent": 1})
    assert count_problems(broken) == ["secrets found in artifacts: 1, expected 0",
                                      "short processes: spans delivered: 8, expected 9 (short processes: spans sent)"]
