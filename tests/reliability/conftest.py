"""Counts of what the reliability tests tried, printed in their own output."""

from __future__ import annotations

import pytest
from reliability_helpers import COUNTS


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print COUNTS (each test adds what it planted, tried, found) after the test results."""
    if not COUNTS:
        return
    terminalreporter.section("reliability counts")
    for name in sorted(COUNTS):
        terminalreporter.write_line(f"{name}: {COUNTS[name]}")
