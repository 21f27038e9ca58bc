"""Evaluators: deterministic assertions, judges, Ragas adapters, hallucination and bias."""
