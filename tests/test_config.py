from __future__ import annotations

from pathlib import Path

import pytest

from llmops.config import load_settings
from llmops.errors import ConfigError


def pyproject(tmp_path: Path, body: str) -> Path:
    (tmp_path / "pyproject.toml").write_text("[project]\nname='x'\n\n[tool.llmops]\n" + body, encoding="utf-8")
    return tmp_path


def test_defaults_without_pyproject(tmp_path: Path) -> None:
    s = load_settings(tmp_path, env={})
    assert s.default_model == "local/smollm2" and s.cache == "read-write"
    assert s.prompts_path == tmp_path / "prompts"


def test_layers_pyproject_env_cli(tmp_path: Path) -> None:
    root = pyproject(tmp_path, 'default_model = "a"\njudge_model = "j"\nconcurrency = 3\n')
    s = load_settings(root, env={})
    assert (s.default_model, s.judge_model, s.concurrency) == ("a", "j", 3)
    s = load_settings(root, env={"LLMOPS_DEFAULT_MODEL": "b", "LLMOPS_CONCURRENCY": "7"})
    assert (s.default_model, s.concurrency) == ("b", 7)
    s = load_settings(root, env={"LLMOPS_DEFAULT_MODEL": "b"}, overrides={"default_model": "c", "cache": None})
    assert s.default_model == "c" and s.judge_model == "j"


def test_found_from_a_subfolder(tmp_path: Path) -> None:
    root = pyproject(tmp_path, 'default_model = "sub"\n')
    (root / "a" / "b").mkdir(parents=True)
    assert load_settings(root / "a" / "b", env={}).default_model == "sub"


def test_unknown_key_names_file_line_and_suggests(tmp_path: Path) -> None:
    root = pyproject(tmp_path, 'default_model = "a"\ndefualt_model = "b"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(root, env={})
    err = info.value
    assert err.key == "defualt_model" and err.line == 6 and err.file == str(root / "pyproject.toml")
    assert "default_model" in (err.hint or "")
    assert err.exit_code == 2


def test_invalid_value_names_key_and_source(tmp_path: Path) -> None:
    root = pyproject(tmp_path, 'cache = "sometimes"\n')
    with pytest.raises(ConfigError, match="cache") as info:
        load_settings(root, env={})
    assert info.value.line == 5
    pyproject(tmp_path, "")
    with pytest.raises(ConfigError, match="LLMOPS_CONCURRENCY"):
        load_settings(tmp_path, env={"LLMOPS_CONCURRENCY": "many"})
    with pytest.raises(ConfigError, match="--concurrency"):
        load_settings(tmp_path, env={}, overrides={"concurrency": 0})


def test_unknown_env_var_suggests(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="LLMOPS_DEFALT_MODEL") as info:
        load_settings(tmp_path, env={"LLMOPS_DEFALT_MODEL": "x"})
    assert "LLMOPS_DEFAULT_MODEL" in (info.value.hint or "")


def test_model_aliases(tmp_path: Path) -> None:
    root = pyproject(tmp_path, '[tool.llmops.models]\nfast = "openai/gpt-4o-mini"\n'
                               'mine = { model = "fast", params = { temperature = 0.2 } }\n')
    s = load_settings(root, env={})
    assert s.resolve_model("fast").model == "openai/gpt-4o-mini"
    mine = s.resolve_model("mine")
    assert mine.model == "openai/gpt-4o-mini" and mine.params == {"temperature": 0.2}
    assert s.resolve_model("anthropic/x").model == "anthropic/x"


def test_invalid_toml(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.llmops\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_settings(tmp_path, env={})


def test_langfuse_credentials_from_env(tmp_path: Path) -> None:
    s = load_settings(tmp_path, env={"LANGFUSE_PUBLIC_KEY": "pk", "LANGFUSE_SECRET_KEY": "sk-lf-secret",
                                     "LANGFUSE_BASE_URL": "http://127.0.0.1:1"})
    assert s.langfuse is not None and s.langfuse.host == "http://127.0.0.1:1"
    assert "sk-lf-secret" not in repr(s) and "sk-lf-secret" not in s.model_dump_json()
