from __future__ import annotations

import os
from pathlib import Path

import pytest

from llmops.errors import PromptError
from llmops.prompts import PromptRef, PromptRegistry, check_lock, update_lock


def make(tmp_path: Path) -> PromptRegistry:
    for v in (1, 2, 3):
        (tmp_path / "qa").mkdir(exist_ok=True)
        (tmp_path / "qa" / f"v{v}.jinja").write_text(f"version {v}", encoding="utf-8")
    (tmp_path / "qa" / "labels.yaml").write_text("production: 2\nstaging: 3\n", encoding="utf-8")
    return PromptRegistry(tmp_path)


@pytest.mark.parametrize(("text", "expected"), [
    ("qa", PromptRef("qa")), ("qa@3", PromptRef("qa", version=3)), ("qa@v3", PromptRef("qa", version=3)),
    ("qa@production", PromptRef("qa", label="production")),
])
def test_parse_refs(text: str, expected: PromptRef) -> None:
    assert PromptRef.parse(text) == expected
    assert str(PromptRef.parse(text)) in (text, text.replace("@v", "@"))


def test_resolution(tmp_path: Path) -> None:
    reg = make(tmp_path)
    assert reg.resolve("qa") == ("qa", 3)
    assert reg.resolve("qa@1") == ("qa", 1)
    assert reg.resolve("qa@production") == ("qa", 2)
    assert reg.get("qa@staging").render({})[0].content == "version 3"


def test_unknown_things_list_what_exists(tmp_path: Path) -> None:
    reg = make(tmp_path)
    with pytest.raises(PromptError, match="no version 9") as info:
        reg.get("qa@9")
    assert "v1, v2, v3" in (info.value.hint or "")
    with pytest.raises(PromptError, match="no label 'prod'") as info:
        reg.get("qa@prod")
    assert "production -> v2" in (info.value.hint or "")
    with pytest.raises(PromptError, match="unknown prompt 'qaa'") as info:
        reg.get("qaa")
    assert "qa" in (info.value.hint or "")


@pytest.mark.parametrize("ref", ["../etc/passwd", "/etc/passwd", "qa/../../x", "..", "a b"])
def test_refs_cannot_escape(tmp_path: Path, ref: str) -> None:
    make(tmp_path)
    with pytest.raises(PromptError):
        PromptRegistry(tmp_path).get(ref)


def test_symlink_out_of_prompts_dir_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "v1.jinja").write_text("secret", encoding="utf-8")
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    os.symlink(outside, prompts / "evil")
    with pytest.raises(PromptError, match="outside the prompts directory"):
        PromptRegistry(prompts).get("evil")


def test_set_label(tmp_path: Path) -> None:
    reg = make(tmp_path)
    reg.set_label("qa", "production", 3)
    assert reg.resolve("qa@production") == ("qa", 3)
    with pytest.raises(PromptError):
        reg.set_label("qa", "production", 7)


def test_lock_and_check(tmp_path: Path) -> None:
    reg = make(tmp_path)
    assert check_lock(reg).unlocked == ["qa@1", "qa@2", "qa@3"]
    assert update_lock(reg) == ["qa@1", "qa@2", "qa@3"]
    assert check_lock(reg).ok and not check_lock(reg).unlocked
    (tmp_path / "qa" / "v2.jinja").write_text("changed in place", encoding="utf-8")
    result = check_lock(reg)
    assert not result.ok and result.edited == ["qa@2"]
    with pytest.raises(PromptError, match="edited in place"):
        update_lock(reg)
    (tmp_path / "qa" / "v4.jinja").write_text("new", encoding="utf-8")
    assert "qa@4" in check_lock(reg).unlocked


def test_corrupted_lock_file(tmp_path: Path) -> None:
    reg = make(tmp_path)
    (tmp_path / "prompts.lock.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(PromptError, match="corrupted lock file"):
        check_lock(reg)
