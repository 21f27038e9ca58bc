"""Langfuse outside the request path: read traced calls, write scores, sync prompts.

- :func:`fetch_calls` / :func:`fetch_traces` read generations through the v2 observations API
  (the SDK's real-time read path) and convert them to local :class:`SpanRow` objects, so
  ``traces export`` and ``traces score`` work the same on both sources.
- :func:`write_scores` posts scores through the SDK's score queue and waits (bounded).
- :func:`push_prompts` / :func:`pull_prompts` sync versions and labels with Langfuse prompt
  management. The Jinja file is stored intact as a text prompt; its config carries our version
  number and content hash (``llmops_version``, ``llmops_hash``), which is how both sides know
  which versions they share. ``prompts/langfuse.json`` records our version -> Langfuse version.
- :func:`resolve_label` resolves ``name@production`` from Langfuse at run time (cached by the
  SDK, short timeout, and a short back-off after a failure so an outage costs one timeout, not
  one per call); the caller falls back to the local labels.

Like the exporter, this module imports ``langfuse`` only inside its functions.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops.errors import ConfigError, LLMOpsError, PromptError
from llmops.tracing.langfuse_exporter import SYNC_FILE, forget_client, read_version_map, run_bounded
from llmops.tracing.model import SpanKind, TraceAttributes
from llmops.tracing.store import ScoreRow, SpanRow, TraceDetail

if TYPE_CHECKING:
    from llmops.config import Settings
    from llmops.prompts.registry import PromptRegistry
    from llmops.prompts.template import PromptVersion

_FIELDS = "core,basic,io,metadata,model,usage,prompt,trace_context"


class LangfuseUnavailableError(LLMOpsError):
    """Langfuse could not be reached or refused the request (exit code 4: not a regression)."""

    exit_code = 4


_TRACES_HINT = ("check LANGFUSE_HOST and the keys; the local trace store works without Langfuse "
                "(--source local)")
_DATASETS_HINT = "check LANGFUSE_HOST and the keys; a suite whose cases are in files needs no Langfuse"
_PROMPTS_HINT = ("check LANGFUSE_HOST and the keys; local prompts need no Langfuse: "
                 "`llmops prompts render REF --source local`, or prompt_source = \"local\"")


def client(settings: Settings) -> Any:
    """A Langfuse SDK client for the configured project.

    Raises:
        ConfigError: when no Langfuse credentials are configured.
    """
    creds = settings.langfuse
    if creds is None:
        raise ConfigError("Langfuse is not configured", key="LANGFUSE_PUBLIC_KEY",
                          hint="set LANGFUSE_PUBLIC_KEY, LANGFUSE_SECRET_KEY and LANGFUSE_HOST")
    from langfuse import Langfuse

    forget_client(creds.public_key)  # a shut-down singleton would drop everything we send
    return Langfuse(public_key=creds.public_key, secret_key=creds.secret_key.get_secret_value(),
                    base_url=creds.host.rstrip("/"), environment=settings.environment, release=settings.release,
                    timeout=10)


def _call(what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except LLMOpsError:
        raise
    except Exception as exc:
        status = getattr(exc, "status_code", None)
        detail = f"HTTP {status}" if status else type(exc).__name__
        hint = (_PROMPTS_HINT if what.startswith(("prompt", "label"))
                else _DATASETS_HINT if what.startswith("dataset") else _TRACES_HINT)
        raise LangfuseUnavailableError(f"Langfuse {what} failed ({detail}): {str(exc)[:200]}", hint=hint) from None


def text_hash(source: str) -> str:
    """The content hash of a prompt's text: what both sides compare (never the hash a config claims).

    A version edited in the Langfuse UI keeps the config of the version it came from, so the
    ``llmops_hash`` in its config names text it no longer has.
    """
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


def _claims(config: dict[str, Any], digest: str) -> bool:
    """Whether a Langfuse version's config was written by push for exactly this text.

    ``llmops_hash`` is the prompt's content hash, which also covers a shared tools file; the
    text alone is ``llmops_text_hash`` (versions pushed before it existed: the content hash).
    """
    return config.get("llmops_text_hash", config.get("llmops_hash")) == digest


# ---- reading traces ----------------------------------------------------------------------------
def _parse(value: Any) -> Any:
    """The API returns input/output as raw strings: decode JSON structures, keep plain text."""
    if isinstance(value, str) and value[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _ts(value: Any) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return 0.0


# Langfuse observation types we keep apart; the others (agent, chain, retriever, ...) are spans here.
_KINDS: dict[str, SpanKind] = {"GENERATION": "generation", "TOOL": "tool"}


def observation_to_row(obs: Any, versions: dict[str, dict[str, int]] | None = None) -> SpanRow:
    """Convert a v2 API observation (SDK model or dict) into a local span row."""
    get = obs.get if isinstance(obs, dict) else (lambda k, d=None: getattr(obs, k, d))

    def pick(snake: str, camel: str) -> Any:
        value = get(snake)
        return value if value is not None else get(camel)

    metadata = {k: _parse(v) for k, v in (get("metadata") or {}).items()}
    usage = pick("usage_details", "usageDetails") or {}
    cost = pick("cost_details", "costDetails") or {}
    total_cost = pick("total_cost", "totalCost")
    prompt_name = pick("prompt_name", "promptName")
    lf_version = pick("prompt_version", "promptVersion")
    version = lf_version
    if prompt_name and lf_version is not None and versions:
        inverse = {v: int(k) for k, v in versions.get(prompt_name, {}).items()}
        version = inverse.get(int(lf_version), lf_version)
    obs_type = str(get("type") or "SPAN").upper()
    level = str(get("level") or "DEFAULT").upper()
    start = _ts(pick("start_time", "startTime"))
    end_raw = pick("end_time", "endTime")
    return SpanRow(
        trace_id=str(pick("trace_id", "traceId") or ""), span_id=str(get("id")),
        parent_id=pick("parent_observation_id", "parentObservationId"), name=str(get("name") or "observation"),
        kind=_KINDS.get(obs_type, "span"), start_time=start,
        end_time=_ts(end_raw) if end_raw is not None else start,
        status="error" if level == "ERROR" else "ok", error=pick("status_message", "statusMessage"),
        input=_parse(get("input")), output=_parse(get("output")), metadata=metadata,
        model=metadata.get("requested_model") or get("model"), resolved_model=get("model"),
        params=_parse(pick("model_parameters", "modelParameters")) or {},
        prompt_tokens=int(usage["input"]) if "input" in usage else None,
        completion_tokens=int(usage["output"]) if "output" in usage else None,
        cost_usd=float(total_cost) if total_cost is not None else (float(cost["total"]) if "total" in cost else None),
        cached=bool(metadata.get("cached", False)), prompt_name=prompt_name,
        prompt_version=int(version) if version is not None else None, prompt_hash=metadata.get("prompt_hash"),
        attributes=TraceAttributes(
            user_id=pick("user_id", "userId"), session_id=pick("session_id", "sessionId"),
            tags=tuple(get("tags") or ()), environment=get("environment"), release=get("release"),
            trace_name=pick("trace_name", "traceName")))


def fetch_calls(settings: Settings, *, since: float | None = None, until: float | None = None,
                prompt_name: str | None = None, prompt_version: int | None = None,
                limit: int = 500) -> list[SpanRow]:
    """Generations from Langfuse (newest first from the API, returned oldest first).

    Raises:
        LangfuseUnavailableError: when the API cannot be reached.
    """
    lf = client(settings)
    versions = read_version_map(settings.prompts_path)
    rows: list[SpanRow] = []
    cursor: str | None = None
    while len(rows) < limit:
        page = _call("observations query", lf.api.observations.get_many, type="GENERATION", fields=_FIELDS,
                     expand_metadata="prompt_inputs", limit=min(100, limit - len(rows)) or 1, cursor=cursor,
                     from_start_time=datetime.fromtimestamp(since, tz=UTC) if since is not None else None,
                     to_start_time=datetime.fromtimestamp(until, tz=UTC) if until is not None else None)
        for obs in page.data:
            row = observation_to_row(obs, versions)
            if prompt_name is not None and row.prompt_name != prompt_name:
                continue
            if prompt_version is not None and row.prompt_version != prompt_version:
                continue
            rows.append(row)
        cursor = getattr(page.meta, "cursor", None)
        if not cursor or not page.data:
            break
    return sorted(rows[:limit], key=lambda r: r.start_time)


def fetch_traces(settings: Settings, trace_ids: Sequence[str]) -> list[TraceDetail]:
    """Whole traces (every observation) from Langfuse, with the scores Langfuse holds for them."""
    lf = client(settings)
    versions = read_version_map(settings.prompts_path)
    out: list[TraceDetail] = []
    for trace_id in trace_ids:
        page = _call("observations query", lf.api.observations.get_many, trace_id=trace_id, fields=_FIELDS,
                     expand_metadata="prompt_inputs", limit=1000)
        spans = sorted((observation_to_row(o, versions) for o in page.data), key=lambda r: r.start_time)
        if spans:
            out.append(TraceDetail(trace_id=trace_id, spans=spans, scores=[]))
    return out


def write_scores(settings: Settings, scores: Sequence[ScoreRow], *, timeout_s: float = 15.0) -> int:
    """Post scores to Langfuse (attached to their trace and observation); returns how many were sent.

    The SDK sends them from its background queue; this waits at most ``timeout_s`` for it.
    """
    lf = client(settings)
    sent = 0
    for s in scores:
        if s.value is None:
            continue  # Langfuse has no numeric "unmeasured"; the local store keeps the outcome
        lf.create_score(name=s.name, value=float(s.value), trace_id=s.trace_id, observation_id=s.span_id,
                        score_id=s.score_id, data_type="NUMERIC", comment=s.comment,
                        metadata={"status": s.status, "source": s.source, **s.metadata})
        sent += 1
    if not run_bounded(lf.flush, timeout_s):
        raise LangfuseUnavailableError(f"Langfuse did not accept the scores within {timeout_s:g} s")
    return sent


# ---- prompt management -------------------------------------------------------------------------
@dataclass
class SyncResult:
    """What a push or pull changed.

    Attributes:
        created: ``name@version`` refs created on the other side.
        labels: ``name@label -> vN`` moves applied.
        unchanged: Refs already in sync.
        conflicts: Problems that were not resolved automatically (with their reason).
    """

    created: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)


def _remote_versions(lf: Any, name: str) -> list[Any]:
    """Every version of a Langfuse prompt (empty if the prompt does not exist)."""
    listing = _call("prompt list", lf.api.prompts.list, name=name, limit=100)
    numbers = sorted({v for meta in listing.data if meta.name == name for v in meta.versions})
    return [_call("prompt fetch", lf.api.prompts.get, name, version=v) for v in numbers]


def _config(prompt: Any) -> dict[str, Any]:
    config = getattr(prompt, "config", None)
    return config if isinstance(config, dict) else {}


def read_label_snapshot(prompts_path: Path) -> dict[str, dict[str, int]]:
    """The labels both sides agreed on at the last sync (``labels`` in ``prompts/langfuse.json``)."""
    try:
        data = json.loads((prompts_path / SYNC_FILE).read_text(encoding="utf-8"))
        labels = data.get("labels", {})
        return {str(n): {str(k): int(v) for k, v in m.items()} for n, m in labels.items()}
    except (OSError, ValueError, AttributeError, TypeError):
        return {}


def _write_version_map(registry: PromptRegistry, updates: dict[str, dict[str, int]], host: str, *,
                       labels: dict[str, dict[str, int]] | None = None) -> None:
    path = registry.root / SYNC_FILE
    current = read_version_map(registry.root)
    for name, mapping in updates.items():
        current.setdefault(name, {}).update(mapping)
    snapshot = read_label_snapshot(registry.root)
    snapshot.update(labels or {})
    body: dict[str, Any] = {"host": host, "versions": {n: dict(sorted(m.items(), key=lambda kv: int(kv[0])))
                                                       for n, m in sorted(current.items())}}
    if snapshot:
        body["labels"] = {n: dict(sorted(m.items())) for n, m in sorted(snapshot.items())}
    path.write_text(json.dumps(body, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def push_prompts(settings: Settings, registry: PromptRegistry, names: Sequence[str] | None = None) -> SyncResult:
    """Create missing versions in Langfuse and move its labels to match ours.

    A local version is "present" in Langfuse when a Langfuse version carries its content hash,
    so pushing twice creates nothing, and a locked version is never re-uploaded under a new number.
    """
    from llmops.prompts.lock import check_lock

    lf = client(settings)
    result = SyncResult()
    mapping: dict[str, dict[str, int]] = {}
    chosen = list(names or registry.names())
    remotes = {name: _remote_versions(lf, name) for name in chosen}
    # One truth: a version edited in place since it was locked (what `prompts check` rejects), or
    # whose number Langfuse already holds with other text, is a conflict; nothing is pushed then.
    edited = set(check_lock(registry).edited)
    synced_labels = read_label_snapshot(registry.root)
    for name in chosen:
        by_number: dict[int, Any] = {}
        for p in remotes[name]:
            cfg = _config(p)
            if isinstance(cfg.get("llmops_version"), int) and _claims(cfg, text_hash(_source_of(p))):
                by_number.setdefault(int(cfg["llmops_version"]), p)
        for version in registry.versions(name):
            ref = f"{name}@{version}"
            if ref in edited:
                result.conflicts.append(f"{ref}: edited in place since it was locked (`llmops prompts check` "
                                        "rejects it); restore it and add a new version file instead")
                continue
            there = by_number.get(version)
            if there is not None and text_hash(_source_of(there)) != text_hash(registry.get(ref).source):
                result.conflicts.append(f"{ref}: Langfuse v{there.version} holds other text for this version; "
                                        "restore the local file or add a new version")
        # A label removed locally: Langfuse's API only adds labels (a PATCH keeps the old ones),
        # so it cannot be pushed; say so rather than leave Langfuse serving it silently.
        labels_now = registry.labels(name)
        for label in sorted(synced_labels.get(name, {})):
            if label not in labels_now:
                holder = next((p for p in remotes[name] if label in (p.labels or [])), None)
                if holder is not None:
                    result.conflicts.append(
                        f"{name}@{label}: removed locally, but Langfuse v{holder.version} still has it and its "
                        "API cannot remove a label; remove it in the Langfuse UI (or point it at a version "
                        "with `llmops prompts label`)")
    if result.conflicts:
        return result
    for name in chosen:
        remote = remotes[name]
        by_hash = {text_hash(_source_of(p)): p for p in remote}
        labels = registry.labels(name)
        for version in registry.versions(name):
            pv = registry.get(f"{name}@{version}")
            here = sorted(label for label, v in labels.items() if v == version)
            found = by_hash.get(text_hash(pv.source))
            if found is None:
                created = _call("prompt create", lf.create_prompt, name=name, prompt=pv.source, type="text",
                                labels=here, commit_message=f"llmops {pv.ref}",
                                config={"llmops_version": version, "llmops_hash": pv.content_hash,
                                        "llmops_text_hash": text_hash(pv.source),
                                        "format": "jinja", "model": pv.meta.model, "params": pv.meta.params})
                mapping.setdefault(name, {})[str(version)] = int(created.version)
                result.created.append(pv.ref)
                result.labels += [f"{name}@{label} -> v{version}" for label in here]
                continue
            mapping.setdefault(name, {})[str(version)] = int(found.version)
            missing = [label for label in here if label not in (found.labels or [])]
            if missing:
                _call("label update", lf.update_prompt, name=name, version=int(found.version), new_labels=missing)
                result.labels += [f"{name}@{label} -> v{version}" for label in missing]
            else:
                result.unchanged.append(pv.ref)
    if mapping:
        _write_version_map(registry, mapping, settings.langfuse.host if settings.langfuse else "",
                           labels={name: registry.labels(name) for name in chosen})
    return result


def _source_of(prompt: Any) -> str:
    """The text to write for a Langfuse prompt version (chat prompts become message blocks)."""
    body = prompt.prompt
    if isinstance(body, str):
        return body
    blocks = []
    for m in body:
        role = getattr(m, "role", None) or (m.get("role") if isinstance(m, dict) else None) or "user"
        content = getattr(m, "content", None) or (m.get("content") if isinstance(m, dict) else "") or ""
        blocks.append(f'{{% message "{role}" %}}{content}{{% endmessage %}}')
    return "\n".join(blocks) + "\n"


def pull_prompts(settings: Settings, registry: PromptRegistry, names: Sequence[str] | None = None) -> SyncResult:
    """Write Langfuse versions missing locally as ``vN.jinja`` files, and copy Langfuse's labels.

    A version created by push comes back under its own number (from its config); a version
    made in the Langfuse UI gets the next free local number. A local file whose content differs
    from the Langfuse version with the same number is a conflict and is never overwritten.
    """
    lf = client(settings)
    result = SyncResult()
    mapping: dict[str, dict[str, int]] = {}
    if names is None:
        listing = _call("prompt list", lf.api.prompts.list, limit=100)
        names = sorted({meta.name for meta in listing.data})
    for name in names:
        remote = _remote_versions(lf, name)
        folder = registry.root / name
        local = registry.versions(name) if folder.is_dir() and any(folder.glob("v*.jinja")) else []
        local_hashes = {text_hash(registry.get(f"{name}@{v}").source): v for v in local}
        next_free = max(local, default=0) + 1
        for prompt in remote:
            cfg = _config(prompt)
            source = _source_of(prompt)
            digest = text_hash(source)
            ours = local_hashes.get(digest)
            if ours is None:
                wanted = cfg.get("llmops_version")
                # The config's version number counts only when its hash is this text's: a version
                # edited in the Langfuse UI copies the config of the one it came from.
                pushed = isinstance(wanted, int) and _claims(cfg, digest)
                number = wanted if pushed and isinstance(wanted, int) else next_free
                path = folder / f"v{number}.jinja"
                if path.exists():
                    # Same version number, other content: someone edited a released version.
                    result.conflicts.append(f"{name}@{number}: local file differs from Langfuse v{prompt.version}")
                    continue
                folder.mkdir(parents=True, exist_ok=True)
                path.write_text(source, encoding="utf-8")
                local.append(number)
                local_hashes[digest] = number
                next_free = max(next_free, number + 1)
                ours = number
                result.created.append(f"{name}@{number}")
            else:
                result.unchanged.append(f"{name}@{ours}")
            mapping.setdefault(name, {})[str(ours)] = int(prompt.version)
            for label in prompt.labels or []:
                if label == "latest":
                    continue
                if registry.labels(name).get(label) != ours:
                    registry.set_label(name, label, ours)
                    result.labels.append(f"{name}@{label} -> v{ours}")
    if mapping:
        _write_version_map(registry, mapping, settings.langfuse.host if settings.langfuse else "",
                           labels={name: _local_labels(registry, name) for name in names})
    return result


# ---- run-time label resolution -----------------------------------------------------------------
def _local_labels(registry: PromptRegistry, name: str) -> dict[str, int]:
    try:
        return registry.labels(name)
    except PromptError:
        return {}


def _local_numbers(registry: PromptRegistry, name: str) -> list[int]:
    try:
        return list(registry.versions(name))
    except PromptError:
        return []


_BACKOFF_S = 30.0
_failed_at: dict[str, float] = {}
_failed_lock = threading.Lock()


def resolve_label(settings: Settings, name: str, label: str, *, timeout_s: int = 2) -> PromptVersion | None:
    """The version Langfuse serves for ``name@label``, or None to fall back to the local labels.

    The local file of that version is used when its content hash matches; a version that exists
    only in Langfuse is materialised under ``.llmops/langfuse_prompts/``.
    """
    if settings.langfuse is None:
        return None
    key = f"{settings.langfuse.host}|{name}"
    with _failed_lock:
        if time.monotonic() - _failed_at.get(key, -1e9) < _BACKOFF_S:
            return None
    try:
        prompt = client(settings).get_prompt(name, label=label, type="text", cache_ttl_seconds=60,
                                             max_retries=0, fetch_timeout_seconds=timeout_s)
    except Exception:  # unreachable, unknown label or prompt: the local files decide
        with _failed_lock:
            _failed_at[key] = time.monotonic()
        return None
    from llmops.prompts.registry import PromptRegistry
    from llmops.prompts.template import PromptVersion

    cfg = _config(prompt)
    source = _source_of(prompt)
    digest = text_hash(source)
    version = cfg.get("llmops_version")
    # The config's number names this text only when its hash does (a UI edit copies the config).
    pushed = isinstance(version, int) and _claims(cfg, digest)
    number = version if pushed and isinstance(version, int) else int(prompt.version)
    registry = PromptRegistry(settings.prompts_path)
    try:
        for candidate in ([number] if pushed else []) + registry.versions(name):
            local = registry.get(f"{name}@{candidate}")
            if text_hash(local.source) == digest:
                return local
    except PromptError:
        pass
    taken = _local_numbers(registry, name)
    if not pushed and number in taken:  # never shadow a local version's number with other text
        number = max(taken) + 1
    path = settings.path(Path(".llmops/langfuse_prompts")) / name / f"v{number}.jinja"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text(encoding="utf-8") != source:
        path.write_text(source, encoding="utf-8")
    return PromptVersion.load(name, number, path)
