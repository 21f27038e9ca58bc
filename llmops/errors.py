"""The one documented exceptions module of llmops.

Every error carries structured fields (file, line, key, model, status code) so that the CLI,
the pytest plugin and notebooks can render it the same way. ``UserError`` means "you can fix
this by changing a file, a flag or an environment variable" and maps to exit code 2.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path

from llmops.credentials import scrub


class LLMOpsError(Exception):
    """Base class of every error llmops raises on purpose."""

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        # Every message may quote a provider's error body, a URL or a config value: known
        # credentials and credential-shaped text never get past here (see llmops.credentials).
        message = scrub(message)
        hint = scrub(hint) if hint else hint
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class UserError(LLMOpsError):
    """Fixable misuse: a bad file, a missing variable, an unknown model or flag.

    Attributes:
        file: The file at fault, if any.
        line: The 1-based line in ``file``, if known.
        key: The key, variable or option at fault, if any.
    """

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        line: int | None = None,
        key: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.file = str(file) if file is not None else None
        self.line = line
        self.key = key
        where = ""
        if self.file:
            where = self.file + (f":{line}" if line else "")
        full = f"{where}: {message}" if where else message
        super().__init__(full, hint=hint)


class ConfigError(UserError):
    """Invalid configuration in ``[tool.llmops]``, an ``LLMOPS_*`` variable or a CLI flag."""


class PromptError(UserError):
    """A prompt file, reference or rendering problem."""


class EvalsetError(UserError):
    """A suite file that does not validate."""


class CacheMissError(UserError):
    """Replay mode (``cache = "read-only"``) met a request that is not in the cache."""


class StoreError(LLMOpsError):
    """The run store, cache or a baseline file is unreadable or corrupted."""

    exit_code = 2


class ProviderError(LLMOpsError):
    """A call to a model provider failed.

    Attributes:
        model: The resolved model string.
        status_code: The HTTP status code, when the provider sent one.
        retryable: Whether the retry policy may try the call again.
        retry_after: Seconds the provider asked us to wait, if it said.
        attempts: How many attempts were made before the call was given up (1 = not retried).
    """

    attempts: int = 1

    def __init__(
        self,
        message: str,
        *,
        model: str,
        status_code: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
        hint: str | None = None,
    ) -> None:
        self.model = model
        self.status_code = status_code
        self.retryable = retryable
        self.retry_after = retry_after
        code = f" (HTTP {status_code})" if status_code else ""
        super().__init__(f"{model}{code}: {message}", hint=hint)

    def gave_up(self, attempts: int) -> None:
        """Record that the retry policy gave up after ``attempts`` attempts (said in the message when > 1)."""
        base = self.__dict__.setdefault("_first_message", self.message)  # an error object may be raised again
        self.attempts = attempts
        self.message = f"{base} (gave up after {attempts} attempts)" if attempts > 1 else base
        self.args = (self.message,)


class AuthError(ProviderError):
    """The provider refused our credentials, or none were set.

    Attributes:
        env_vars: The environment variables that would provide the missing key.
    """

    def __init__(self, message: str, *, model: str, env_vars: Iterable[str] = (),
                 status_code: int | None = None) -> None:
        self.env_vars = tuple(env_vars)
        hint = f"set {' or '.join(self.env_vars)}" if self.env_vars else "check the provider's API key"
        super().__init__(message, model=model, status_code=status_code, hint=hint)


class RateLimitError(ProviderError):
    """The provider answered 429 (after our retries were exhausted)."""


class ProviderTimeoutError(ProviderError):
    """The call did not finish within its timeout (``status_code`` is None unless the server sent 408)."""


class ProviderConnectionError(ProviderError):
    """The provider was not reached or the connection broke: refused, reset, name not resolved.

    No HTTP status was received, so ``status_code`` is None (LiteLLM reports these as a 500).
    """


class InternalError(LLMOpsError):
    """A bug in llmops itself (e.g. reading a response the provider sent correctly). Never retried."""


class BudgetExceededError(LLMOpsError):
    """A paid call was refused before it was sent: its worst-case cost would cross ``max_cost_usd``.

    Raised by the client while a :class:`llmops.llm.budget.Budget` is active; the runner turns it
    into a budget stop (the unit is left for ``--resume``), never into an error result.
    """

    exit_code = 3


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """Return a ``did you mean 'x'?`` hint for a misspelled key, or None.

    Args:
        word: What the user wrote.
        choices: The valid spellings.
    """
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None


class StreamCancelledError(LLMOpsError):
    """A streamed call was stopped by its caller before the end (recorded, not lost).

    Attributes:
        chunks: How many chunks the caller had received.
    """

    def __init__(self, message: str, *, chunks: int = 0) -> None:
        self.chunks = chunks
        super().__init__(message)
