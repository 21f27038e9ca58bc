"""The prompt lock file: content hashes of every released prompt version.

A locked version must never change; a new behaviour is a new version file. ``check`` finds
versions edited in place (and locked versions whose file disappeared).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from llmops._files import atomic_write_text, os_error_text
from llmops.errors import PromptError
from llmops.prompts.registry import PromptRegistry

LOCK_FILE = "prompts.lock.json"


class LockFile(BaseModel):
    """On-disk form: ``{"version": 1, "prompts": {"name": {"1": "sha256"}}}``."""

    model_config = ConfigDict(extra="forbid")

    version: int = 1
    prompts: dict[str, dict[str, str]] = {}


@dataclass
class LockCheck:
    """Outcome of comparing the prompt files with the lock file."""

    edited: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unlocked: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no locked version was edited or removed."""
        return not self.edited and not self.missing


def lock_path(registry: PromptRegistry) -> Path:
    """Where the lock file of a registry lives."""
    return registry.root / LOCK_FILE


def read_lock(registry: PromptRegistry) -> LockFile:
    """Read the lock file (an empty one if absent)."""
    path = lock_path(registry)
    if not path.exists() and not path.is_symlink():
        return LockFile()
    _check_inside(registry, path)
    try:
        return LockFile.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except ValidationError as exc:  # its text quotes the input: name the place, not the content
        err = exc.errors()[0]
        where = str(err["loc"][0]) if err["loc"] else "(top level)"  # deeper keys are the file's content
        raise PromptError(f"corrupted lock file: {where}: {err['msg']}", file=path,
                          hint="restore it from git (it records released prompt versions)") from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError, OSError) as exc:
        raise PromptError(f"corrupted lock file: {exc}", file=path,
                          hint="restore it from git (it records released prompt versions)") from None


def _check_inside(registry: PromptRegistry, path: Path) -> None:
    """The lock file (or a symlink in its place) must resolve inside the prompts folder."""
    try:
        path.resolve().relative_to(registry.root.resolve())
    except ValueError:
        raise PromptError(f"'{path}' resolves outside the prompts directory {registry.root}", file=path,
                          hint="replace the symlink by the lock file itself") from None


def check_lock(registry: PromptRegistry) -> LockCheck:
    """Compare every prompt version with the lock file."""
    lock = read_lock(registry)
    result = LockCheck()
    current = {(pv.name, str(pv.version)): pv.content_hash for pv in registry.all_versions()}
    for name, versions in sorted(lock.prompts.items()):
        for version, digest in sorted(versions.items(), key=lambda kv: int(kv[0])):
            now = current.get((name, version))
            if now is None:
                result.missing.append(f"{name}@{version}")
            elif now != digest:
                result.edited.append(f"{name}@{version}")
    for name, version in sorted(current, key=lambda nv: (nv[0], int(nv[1]))):
        if version not in lock.prompts.get(name, {}):
            result.unlocked.append(f"{name}@{version}")
    return result


def update_lock(registry: PromptRegistry, *, force: bool = False) -> list[str]:
    """Record hashes of new versions. Returns the refs added.

    Raises:
        PromptError: when a locked version was edited in place (unless ``force``).
    """
    check = check_lock(registry)
    if check.edited and not force:
        raise PromptError(f"locked prompt versions were edited in place: {', '.join(check.edited)}",
                          file=lock_path(registry),
                          hint="restore them and add a new version file (vN+1.jinja) instead")
    lock = read_lock(registry)
    for pv in registry.all_versions():
        lock.prompts.setdefault(pv.name, {})[str(pv.version)] = pv.content_hash
    body = json.dumps(lock.model_dump(), indent=2, sort_keys=True) + "\n"
    path = lock_path(registry)
    _check_inside(registry, path)
    try:
        atomic_write_text(path, body)
    except OSError as exc:
        raise PromptError(f"cannot write lock file: {os_error_text(exc)}", file=path) from None
    return check.unlocked + (check.edited if force else [])
