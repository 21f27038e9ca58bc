"""The versioned prompt registry: ``prompts/<name>/vN.jinja`` files, labels and references.

References: ``name`` (latest version), ``name@3`` (a version), ``name@production`` (a label).
Labels live in ``prompts/<name>/labels.yaml`` (``production: 2``), one place per prompt.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from llmops._digits import small_int
from llmops._files import atomic_write_text, os_error_text
from llmops._yaml import SafeLoader, YAMLProblem, load_yaml
from llmops.errors import PromptError, did_you_mean
from llmops.prompts.template import PromptVersion

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_LABEL = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
_VERSION_FILE = re.compile(r"^v([0-9]{1,6})\.jinja$")
LABELS_FILE = "labels.yaml"


@dataclass(frozen=True)
class PromptRef:
    """A parsed reference: a name and a selector (version number, label, or latest)."""

    name: str
    version: int | None = None
    label: str | None = None

    @classmethod
    def parse(cls, text: str) -> PromptRef:
        """Parse ``name``, ``name@3``, ``name@v3`` or ``name@label``.

        Raises:
            PromptError: for an empty or malformed reference.
        """
        name, sep, selector = text.strip().partition("@")
        if not _NAME.match(name) or ".." in name:
            raise PromptError(f"invalid prompt reference '{text}'",
                              hint="use name, name@3 or name@production (letters, digits, _ . -)")
        if not sep:
            return cls(name=name)
        number = small_int(selector[1:] if selector[:1] in ("v", "V") else selector)
        if number is not None:
            return cls(name=name, version=number)
        if not _LABEL.match(selector):
            raise PromptError(f"invalid version or label '{selector}' in '{text}'")
        return cls(name=name, label=selector)

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}@{self.version}"
        if self.label is not None:
            return f"{self.name}@{self.label}"
        return self.name


class PromptRegistry:
    """Reads prompts from a directory. Cheap to create; files are read on demand."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    # ---- discovery -------------------------------------------------------------------------
    def names(self) -> list[str]:
        """All prompt names (folders holding at least one ``vN.jinja``)."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir()
                      if p.is_dir() and _NAME.match(p.name) and self._version_files(p))

    def _folder(self, name: str) -> Path:
        if not _NAME.match(name) or ".." in name:
            raise PromptError(f"invalid prompt name '{name}'")
        folder = self.root / name
        if not folder.is_dir() or not self._version_files(folder):
            names = self.names()
            raise PromptError(f"unknown prompt '{name}' in {self.root}", key=name,
                              hint=did_you_mean(name, names) or
                              (f"prompts: {', '.join(names)}" if names else "no prompts found"))
        self._check_inside(folder)
        return folder

    def _check_inside(self, path: Path) -> None:
        # Symlinks must not lead out of the prompts directory.
        try:
            path.resolve().relative_to(self.root.resolve())
        except ValueError:
            raise PromptError(f"'{path}' resolves outside the prompts directory {self.root}",
                              file=path) from None

    @staticmethod
    def _version_files(folder: Path) -> dict[int, Path]:
        found: dict[int, Path] = {}
        for p in folder.iterdir():
            m = _VERSION_FILE.match(p.name)
            if m and p.is_file():
                found[int(m.group(1))] = p
        return found

    def versions(self, name: str) -> list[int]:
        """Version numbers of a prompt, ascending."""
        return sorted(self._version_files(self._folder(name)))

    def labels(self, name: str) -> dict[str, int]:
        """The prompt's labels (label -> version)."""
        path = self._folder(name) / LABELS_FILE
        if not path.exists() and not path.is_symlink():
            return {}
        self._check_inside(path)  # a symlink to a file outside prompts/ is never read
        try:
            data = load_yaml(path.read_text(encoding="utf-8"), loader=SafeLoader, max_nodes=10_000)[0] or {}
        except UnicodeDecodeError as exc:
            raise PromptError(f"invalid labels file: not valid UTF-8 at byte {exc.start}", file=path) from None
        except OSError as exc:
            raise PromptError(f"cannot read labels file: {exc.strerror or exc}", file=path) from None
        except YAMLProblem as exc:
            raise PromptError(f"invalid labels file: {exc.message}", file=path, line=exc.line,
                              key=exc.key) from None
        if not isinstance(data, dict):
            raise PromptError("labels file must map label names to version numbers", file=path)
        labels: dict[str, int] = {}
        for label, version in data.items():
            if not isinstance(label, str) or not _LABEL.match(label):
                raise PromptError(f"invalid label name {label!r}", file=path, key=str(label))
            if isinstance(version, str) and (number := small_int(version.lstrip("v"))) is not None:
                version = number
            if not isinstance(version, int) or isinstance(version, bool):
                raise PromptError(f"label '{label}' must point at a version number, got {version!r}",
                                  file=path, key=label)
            labels[label] = version
        return labels

    def set_label(self, name: str, label: str, version: int) -> None:
        """Point ``label`` at ``version`` (writes labels.yaml)."""
        if not _LABEL.match(label) or label == "latest":
            raise PromptError(f"invalid label name '{label}'")
        if version not in self.versions(name):
            raise PromptError(f"{name} has no version {version}",
                              hint=f"versions: {', '.join(map(str, self.versions(name)))}")
        labels = self.labels(name)
        labels[label] = version
        path = self._folder(name) / LABELS_FILE
        self._check_inside(path)
        try:
            atomic_write_text(path, yaml.safe_dump(dict(sorted(labels.items())), sort_keys=True))
        except OSError as exc:
            raise PromptError(f"cannot write labels file: {os_error_text(exc)}", file=path) from None

    # ---- resolution ------------------------------------------------------------------------
    def resolve(self, ref: str | PromptRef) -> tuple[str, int]:
        """Resolve a reference to ``(name, version)``.

        Raises:
            PromptError: listing what exists when the name, version or label is unknown.
        """
        parsed = PromptRef.parse(ref) if isinstance(ref, str) else ref
        versions = self.versions(parsed.name)
        if parsed.version is not None:
            if parsed.version not in versions:
                raise PromptError(f"prompt '{parsed.name}' has no version {parsed.version}",
                                  key=str(parsed),
                                  hint=f"versions: {', '.join(f'v{v}' for v in versions)}")
            return parsed.name, parsed.version
        if parsed.label is not None and parsed.label != "latest":
            labels = self.labels(parsed.name)
            if parsed.label not in labels:
                known = ", ".join(f"{k} -> v{v}" for k, v in sorted(labels.items())) or "(none)"
                raise PromptError(f"prompt '{parsed.name}' has no label '{parsed.label}'",
                                  key=str(parsed), hint=f"labels: {known}")
            version = labels[parsed.label]
            if version not in versions:
                raise PromptError(f"label '{parsed.label}' points at missing version {version}",
                                  file=self._folder(parsed.name) / LABELS_FILE, key=parsed.label)
            return parsed.name, version
        return parsed.name, versions[-1]

    def get(self, ref: str | PromptRef) -> PromptVersion:
        """Load the prompt version a reference points at."""
        name, version = self.resolve(ref)
        path = self._version_files(self._folder(name))[version]
        self._check_inside(path)
        return PromptVersion.load(name, version, path)

    def all_versions(self) -> list[PromptVersion]:
        """Every version of every prompt."""
        return [self.get(PromptRef(name, v)) for name in self.names() for v in self.versions(name)]
