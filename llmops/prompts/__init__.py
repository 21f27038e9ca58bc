"""Versioned Jinja prompt templates: registry, rendering, lock file."""

from llmops.prompts.lock import LockCheck, check_lock, update_lock
from llmops.prompts.registry import PromptRef, PromptRegistry
from llmops.prompts.template import FrontMatter, InputSpec, PromptVersion, render_string

__all__ = [
    "FrontMatter",
    "InputSpec",
    "LockCheck",
    "PromptRef",
    "PromptRegistry",
    "PromptVersion",
    "check_lock",
    "render_string",
    "update_lock",
]
