"""The regression runner: async engine, run store, resume, shards and merge."""

from llmops.runner.engine import aresume_run, arun_suite, resume_run, run_suite
from llmops.runner.preflight import dry_run
from llmops.runner.results import Manifest, RunResult, UnitResult, VariantSummary
from llmops.runner.store import RunStore

__all__ = [
    "Manifest",
    "RunResult",
    "RunStore",
    "UnitResult",
    "VariantSummary",
    "aresume_run",
    "arun_suite",
    "dry_run",
    "resume_run",
    "run_suite",
]
