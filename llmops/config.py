"""Settings: defaults < ``[tool.llmops]`` in pyproject.toml < ``LLMOPS_*`` env vars < CLI flags.

This is the only module that reads environment variables. Everything else receives a
:class:`Settings` object (dependencies are passed in, defaults are picked here).
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from llmops import credentials
from llmops.errors import ConfigError, did_you_mean

CacheMode = Literal["off", "read-write", "read-only", "refresh"]
#: The cache modes, in the order the CLI and the pytest plugin offer them (from :data:`CacheMode`).
CACHE_MODES: tuple[str, ...] = get_args(CacheMode)
ENV_PREFIX = "LLMOPS_"


class ModelAlias(BaseModel):
    """A named model: a LiteLLM model string plus default parameters (api_base, temperature, ...)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str
    params: dict[str, Any] = Field(default_factory=dict)

    def __repr_args__(self) -> Any:
        # A notebook or log that shows settings shows params without credentials.
        yield "model", self.model
        yield "params", credentials.public_params(self.params)


class LangfuseSettings(BaseModel):
    """Langfuse credentials; present only when the environment provides them."""

    model_config = ConfigDict(frozen=True)

    public_key: str
    secret_key: SecretStr
    host: str = "https://cloud.langfuse.com"


class Settings(BaseModel):
    """Resolved llmops configuration.

    Relative paths are resolved against ``root`` (the folder holding pyproject.toml).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    root: Path = Field(default_factory=Path.cwd)
    prompts_dir: Path = Path("prompts")
    evalsets_dir: Path = Path("evalsets")
    models: dict[str, ModelAlias] = Field(default_factory=dict)
    default_model: str = "local/smollm2"
    judge_model: str = "local/smollm2"
    cache: CacheMode = "read-write"
    cache_path: Path = Path(".llmops/cache.sqlite")
    store_path: Path = Path(".llmops/runs.sqlite")
    trace_path: Path = Path(".llmops/traces.sqlite")
    # Human review marks (`llmops view`), in the format `llmops calibrate --labels` reads: meant to be committed.
    review_path: Path = Path("review/labels.jsonl")
    concurrency: int = Field(default=4, ge=1, le=1024)
    timeout_s: float = Field(default=120.0, gt=0, allow_inf_nan=False)
    max_retries: int = Field(default=4, ge=0, le=20)
    retry_max_wait_s: float = Field(default=60.0, ge=0, allow_inf_nan=False)
    seed: int = 0
    tracing: Literal["auto", "local", "langfuse", "off"] = "auto"
    # Where `name@label` resolves at run time: the local labels.yaml, or Langfuse prompt
    # management (its `production` label) with the local files as the fallback.
    prompt_source: Literal["local", "langfuse"] = "local"
    # Where a `cases_from:` suite's cases come from: `auto` fetches the Langfuse dataset when
    # Langfuse is configured and reachable (else the committed snapshot), `snapshot` never asks.
    dataset_source: Literal["auto", "snapshot"] = "auto"
    # Record eval runs as Langfuse experiment runs: `auto` for `cases_from:` suites when traces go
    # to Langfuse, `on` for every suite, `off` never.
    langfuse_experiments: Literal["auto", "on", "off"] = "auto"
    environment: str = "development"
    release: str | None = None
    langfuse: LangfuseSettings | None = None
    # Project modules imported before a run so their `@register_evaluator` kinds can be named in
    # suites (imported with the project root on sys.path: no PYTHONPATH needed).
    evaluator_modules: list[str] = Field(default_factory=list)
    # A YAML file of rules that answer `fake/...` models (deterministic examples and CI demos).
    fake_answers: Path | None = None

    @field_validator("models", mode="before")
    @classmethod
    def _aliases(cls, value: Any) -> Any:
        # Allow the short form `fast = "openai/gpt-4o-mini"` next to the table form.
        if isinstance(value, Mapping):
            return {k: ({"model": v} if isinstance(v, str) else v) for k, v in value.items()}
        return value

    def path(self, p: Path) -> Path:
        """Return ``p`` resolved against the project root."""
        return p if p.is_absolute() else self.root / p

    @property
    def traces_eval_runs(self) -> bool:
        """Whether an eval run records traces of its units.

        A replay (``cache = "read-only"``) calls no provider: every answer comes from the cache and
        every result and score goes to the run store, so under ``tracing = "auto"`` it records no
        traces (a 2,000-case replay would write 10,000 records copying what the run store holds,
        and every CI replay would show in Langfuse as new eval traces). ``tracing = "local"`` or
        ``"langfuse"`` traces replays too; ``"off"`` traces nothing.
        """
        return self.tracing != "off" and not (self.tracing == "auto" and self.cache == "read-only")

    @property
    def prompts_path(self) -> Path:
        """Absolute prompts directory."""
        return self.path(self.prompts_dir)

    @property
    def evalsets_path(self) -> Path:
        """Absolute evalsets directory."""
        return self.path(self.evalsets_dir)

    def resolve_model(self, name: str) -> ModelAlias:
        """Resolve an alias (or pass a LiteLLM model string through)."""
        seen: set[str] = set()
        alias = ModelAlias(model=name)
        params: dict[str, Any] = {}
        while alias.model in self.models and alias.model not in seen:
            seen.add(alias.model)
            target = self.models[alias.model]
            params = {**target.params, **params}
            alias = target
        return ModelAlias(model=alias.model, params=params)


_FIELDS = tuple(n for n in Settings.model_fields if n not in ("root", "langfuse"))
# Process switches that are not settings (read by apply_process_defaults and the test guard).
_ENV_SWITCHES = frozenset({"LLMOPS_ALLOW_REMOTE_COST_MAP", "LLMOPS_LIVE"})


def find_project_root(start: Path | None = None) -> Path:
    """Return the nearest folder at or above ``start`` that holds a pyproject.toml (else ``start``)."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file():
            return folder
    return here


def _line_of(text: str, key: str) -> int | None:
    in_table = False
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line.startswith("["):
            in_table = line.startswith("[tool.llmops")
            if line.startswith(f"[tool.llmops.{key}"):
                return number
            continue
        if in_table and (line.startswith(f"{key} ") or line.startswith(f"{key}=")):
            return number
    return None


def _read_pyproject(root: Path) -> tuple[dict[str, Any], Path | None, str]:
    path = root / "pyproject.toml"
    if not path.is_file():
        return {}, None, ""
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not valid UTF-8 ({exc.reason})", file=path) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML: {exc}", file=path) from None
    section = data.get("tool", {}).get("llmops", {})
    if not isinstance(section, dict):
        raise ConfigError("[tool.llmops] must be a table", file=path, key="tool.llmops")
    return section, path, text


def _read_env(env: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX):
            continue
        if name in _ENV_SWITCHES:
            continue
        key = name[len(ENV_PREFIX):].lower()
        if key not in _FIELDS:
            known = [ENV_PREFIX + f.upper() for f in _FIELDS]
            raise ConfigError(f"unknown environment variable {name}", key=name,
                              hint=did_you_mean(name, known) or f"known: {', '.join(known)}")
        if key == "evaluator_modules":
            values[key] = [m.strip() for m in raw.split(",") if m.strip()]
        elif key == "models":
            try:
                values[key] = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{name} must be a JSON object: {exc}", key=name) from None
        else:
            values[key] = raw
    return values


def _langfuse_from_env(env: Mapping[str, str]) -> LangfuseSettings | None:
    public, secret = env.get("LANGFUSE_PUBLIC_KEY"), env.get("LANGFUSE_SECRET_KEY")
    if not (public and secret):
        return None
    host = env.get("LANGFUSE_BASE_URL") or env.get("LANGFUSE_HOST") or "https://cloud.langfuse.com"
    return LangfuseSettings(public_key=public, secret_key=SecretStr(secret), host=host)


def load_settings(
    root: Path | str | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Load settings for the project at (or above) ``root``.

    Args:
        root: A folder inside the project; defaults to the current directory.
        overrides: Highest-priority values, typically from CLI flags (None values are ignored).
        env: The environment to read ``LLMOPS_*`` and ``LANGFUSE_*`` from; defaults to ``os.environ``.

    Raises:
        ConfigError: naming the file, line and key (or the variable) that is invalid.
    """
    environ = os.environ if env is None else env
    project = find_project_root(Path(root) if root is not None else None)
    section, path, text = _read_pyproject(project)
    for key in section:
        if key not in _FIELDS:
            hint = did_you_mean(key, _FIELDS) or f"known keys: {', '.join(_FIELDS)}"
            raise ConfigError(f"unknown key '{key}' in [tool.llmops]", file=path,
                              line=_line_of(text, key), key=key, hint=hint)
    env_values = _read_env(environ)
    cli_values = {k: v for k, v in (overrides or {}).items() if v is not None}
    merged: dict[str, Any] = {**section, **env_values, **cli_values}
    merged["root"] = project
    merged["langfuse"] = _langfuse_from_env(environ)
    try:
        settings = Settings.model_validate(merged)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        top = str(err["loc"][0]) if err["loc"] else key
        if top in cli_values:
            source, file, line = f"option --{top.replace('_', '-')}", None, None
        elif top in env_values:
            source, file, line = f"{ENV_PREFIX}{top.upper()}", None, None
        else:
            source, file, line = "[tool.llmops]", path, _line_of(text, top)
        raise ConfigError(f"invalid value for '{key}' ({source}): {err['msg']}",
                          file=file, line=line, key=key) from None
    register_secrets(settings, environ)
    return settings


def apply_process_defaults(env: Mapping[str, str] | None = None) -> None:
    """Set the environment our dependencies read at import, unless the user already chose.

    litellm otherwise downloads its price map at import (5 s timeout offline) and ragas sends
    a telemetry request after every call. ``LLMOPS_ALLOW_REMOTE_COST_MAP=1`` opts out of the first.
    """
    environ = os.environ if env is None else env
    if environ.get("LLMOPS_ALLOW_REMOTE_COST_MAP") != "1":
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("RAGAS_DO_NOT_TRACK", "true")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def env_flag(name: str, env: Mapping[str, str] | None = None) -> str | None:
    """Read one environment variable (the only sanctioned way for other modules)."""
    return (os.environ if env is None else env).get(name)


def secret_env_values(env: Mapping[str, str] | None = None) -> set[str]:
    """Values of credential-named environment variables (``*_API_KEY``, ``*_SECRET_KEY``, ...).

    Names follow the package's one rule (:func:`llmops.credentials.is_secret_name`); passwords inside
    URL values count too. Providers' SDKs read these variables directly, so their values are
    scrubbed by value from errors, logs and traces.
    """
    return credentials.env_secret_values(os.environ if env is None else env)


def register_secrets(settings: Settings, env: Mapping[str, str] | None = None) -> None:
    """Make every credential ``settings`` and the environment hold known to :mod:`llmops.credentials`.

    Alias params (``api_key``, header values, ``api_base`` passwords), the Langfuse secret key and
    credential-named environment variables are then scrubbed from every error, log record and trace.
    """
    values = secret_env_values(env)
    for alias in settings.models.values():
        values |= credentials.secret_values(alias.params)
    if settings.langfuse is not None:
        values.add(settings.langfuse.secret_key.get_secret_value())
    credentials.register(values)
