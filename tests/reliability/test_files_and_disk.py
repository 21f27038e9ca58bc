"""Files llmops writes: never through a symlink out of prompts/, never half-written, "disk full" said as such."""

from __future__ import annotations

import errno
import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from llmops.cli import main
from llmops.errors import PromptError, StoreError
from llmops.prompts import PromptRegistry
from llmops.prompts.lock import read_lock, update_lock

OUTSIDE = "outside-content-TOPSECRET-7777"


@pytest.fixture
def prompts(tmp_path: Path) -> Path:
    root = tmp_path / "project" / "prompts"
    (root / "qa").mkdir(parents=True)
    (root / "qa" / "v1.jinja").write_text("hello", encoding="utf-8")
    return root


def _outside(tmp_path: Path, name: str, text: str) -> Path:
    target = tmp_path / name
    target.write_text(text, encoding="utf-8")
    return target


def test_symlinked_labels_file_outside_prompts_is_neither_read_nor_written(prompts: Path, tmp_path: Path) -> None:
    target = _outside(tmp_path, "outside.yaml", f"{OUTSIDE}: [1, 2]\n")
    (prompts / "qa" / "labels.yaml").symlink_to(target)
    registry = PromptRegistry(prompts)
    with pytest.raises(PromptError, match="outside the prompts directory") as info:
        registry.labels("qa")
    assert OUTSIDE not in str(info.value)
    with pytest.raises(PromptError, match="outside the prompts directory"):
        registry.set_label("qa", "production", 1)
    assert target.read_text(encoding="utf-8") == f"{OUTSIDE}: [1, 2]\n"  # untouched


def test_dangling_labels_symlink_is_not_created_outside(prompts: Path, tmp_path: Path) -> None:
    (prompts / "qa" / "labels.yaml").symlink_to(tmp_path / "created-outside.yaml")
    with pytest.raises(PromptError, match="outside the prompts directory"):
        PromptRegistry(prompts).set_label("qa", "production", 1)
    assert not (tmp_path / "created-outside.yaml").exists()


def test_symlinked_lock_file_outside_prompts_is_neither_read_nor_written(prompts: Path, tmp_path: Path) -> None:
    target = _outside(tmp_path, "outside.json", json.dumps({"prompts": {OUTSIDE: 1}}))
    original = target.read_text(encoding="utf-8")
    (prompts / "prompts.lock.json").symlink_to(target)
    registry = PromptRegistry(prompts)
    for action in (read_lock, update_lock):
        with pytest.raises(PromptError, match="outside the prompts directory") as info:
            action(registry)
        assert OUTSIDE not in str(info.value)
    assert target.read_text(encoding="utf-8") == original


def test_a_corrupted_lock_file_error_does_not_quote_its_content(prompts: Path) -> None:
    (prompts / "prompts.lock.json").write_text(json.dumps({"prompts": {OUTSIDE: 1}}), encoding="utf-8")
    with pytest.raises(PromptError, match="corrupted lock file") as info:
        read_lock(PromptRegistry(prompts))
    assert OUTSIDE not in str(info.value)


def test_lock_and_labels_inside_prompts_still_work(prompts: Path) -> None:
    registry = PromptRegistry(prompts)
    registry.set_label("qa", "production", 1)
    assert registry.labels("qa") == {"production": 1}
    assert update_lock(registry) == ["qa@1"]
    assert read_lock(registry).prompts == {"qa": {"1": registry.get("qa@1").content_hash}}


def _disk_full_on_write(monkeypatch: pytest.MonkeyPatch) -> None:
    """The next file writes fail as on a full disk (after writing part of the text)."""
    real_fdopen = os.fdopen

    class Full:
        def __init__(self, fh: Any) -> None:
            self.fh = fh

        def __enter__(self) -> Full:
            return self

        def __exit__(self, *exc: object) -> None:
            self.fh.close()

        def write(self, text: str) -> int:
            self.fh.write(text[: len(text) // 2])
            self.fh.flush()
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fdopen", lambda *a, **k: Full(real_fdopen(*a, **k)))


def test_disk_full_leaves_the_old_report_and_no_partial_file(project: Path, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    from reliability_helpers import write_suite

    write_suite(project, "small", 2, "fake/echo")
    assert main(["run", "evalsets/small.yaml", "--no-progress", "--markdown", "report.md"]) == 0
    before = (project / "report.md").read_text(encoding="utf-8")
    capsys.readouterr()
    _disk_full_on_write(monkeypatch)
    assert main(["report", "latest", "--markdown", "report.md", "--html", "new.html"]) == 2
    err = capsys.readouterr().err
    assert "disk full" in err, err
    assert (project / "report.md").read_text(encoding="utf-8") == before
    assert not (project / "new.html").exists()
    assert not [p.name for p in project.iterdir() if p.name.endswith(".tmp")]


def test_disk_full_while_writing_labels_or_lock_says_so(prompts: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = PromptRegistry(prompts)
    _disk_full_on_write(monkeypatch)
    with pytest.raises(PromptError, match="disk full"):
        registry.set_label("qa", "production", 1)
    with pytest.raises(PromptError, match="disk full"):
        update_lock(registry)
    assert sorted(p.name for p in prompts.rglob("*")) == ["qa", "v1.jinja"]


def test_a_full_disk_is_not_reported_as_a_corrupted_trace_store(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from llmops.tracing.store import TraceStore

    real_connect = sqlite3.connect

    def tiny(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn = real_connect(*args, **kwargs)
        conn.execute("PRAGMA max_page_count = 1")  # SQLite's own SQLITE_FULL, as on a full disk
        return conn

    monkeypatch.setattr(sqlite3, "connect", tiny)
    store = TraceStore(tmp_path / "traces.sqlite")
    with pytest.raises(StoreError) as info:
        store.traces()  # the first use opens the file and writes its schema
    text = str(info.value)
    assert "disk full" in text and "corrupted" not in text and "aside" not in text, text


def test_a_crafted_cache_with_a_hanging_view_is_refused_before_replay(project: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """The committed cache's ``responses`` table replaced by a VIEW over an infinite recursive CTE."""
    from reliability_helpers import write_suite

    write_suite(project, "small", 2, "fake/echo")
    assert main(["run", "evalsets/small.yaml", "--no-progress"]) == 0
    cache = project / ".llmops" / "cache.sqlite"
    con = sqlite3.connect(cache)
    con.executescript("DROP TABLE responses; CREATE VIEW responses AS WITH RECURSIVE r(key, model, completion, "
                      "created) AS (SELECT 'k', 'm', 'c', 0 UNION ALL SELECT key, model, completion, created "
                      "FROM r) SELECT * FROM r;")
    con.close()
    capsys.readouterr()
    # Before the fix this never returned (the first lookup walks the infinite CTE).
    assert main(["run", "evalsets/small.yaml", "--no-progress", "--cache", "read-only"]) == 2
    err = capsys.readouterr().err
    assert "view 'responses'" in err and "cache" in err, err


def test_a_cache_table_without_its_columns_is_refused(tmp_path: Path) -> None:
    from llmops.llm.cache import ResponseCache

    path = tmp_path / "cache.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE responses (key TEXT PRIMARY KEY)")
    con.close()
    with pytest.raises(StoreError, match="lacks column"):
        ResponseCache(path).check()
