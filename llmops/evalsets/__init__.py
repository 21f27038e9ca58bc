"""Suites and cases: pydantic models, loaders (YAML, JSONL, CSV) and the JSON Schema."""

from llmops.evalsets.loader import LoadedSuite, load_suite, suite_json_schema
from llmops.evalsets.models import Case, EvaluatorSpec, Gate, Suite

__all__ = ["Case", "EvaluatorSpec", "Gate", "LoadedSuite", "Suite", "load_suite", "suite_json_schema"]
