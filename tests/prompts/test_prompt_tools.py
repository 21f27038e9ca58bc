"""Prompts that declare tools, tool_choice and response_format, and render conversations."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmops.errors import PromptError
from llmops.prompts import PromptRegistry

TOOLS_YAML = """\
- name: lookup_order
  description: Find an order by id
  parameters:
    type: object
    properties: {order_id: {type: string}}
    required: [order_id]
- name: escalate
  description: Hand over to a human
"""


def write(root: Path, name: str, text: str, version: int = 1) -> Path:
    (root / name).mkdir(parents=True, exist_ok=True)
    path = root / name / f"v{version}.jinja"
    path.write_text(text, encoding="utf-8")
    return path


def test_inline_tools_tool_choice_and_response_format_become_call_params(tmp_path: Path) -> None:
    write(tmp_path, "agent", "---\nparams: {temperature: 0}\ntools:\n"
          + "".join("  " + line + "\n" for line in TOOLS_YAML.splitlines())
          + "tool_choice: lookup_order\nresponse_format:\n  type: object\n  properties: {answer: {type: string}}\n"
          "---\nHello\n")
    pv = PromptRegistry(tmp_path).get("agent")
    params = pv.call_params
    assert params["temperature"] == 0
    assert [t["function"]["name"] for t in params["tools"]] == ["lookup_order", "escalate"]
    assert params["tools"][1]["function"]["parameters"] == {"type": "object", "properties": {}}
    assert params["tool_choice"] == {"type": "function", "function": {"name": "lookup_order"}}
    assert params["response_format"]["type"] == "json_schema"
    assert params["response_format"]["json_schema"]["schema"]["properties"] == {"answer": {"type": "string"}}
    assert pv.tool_schema("lookup_order")["required"] == ["order_id"]
    assert pv.tool_schema("nope") is None


def test_shared_tools_file_is_in_the_content_hash(tmp_path: Path) -> None:
    (tmp_path / "tools").mkdir()
    shared = tmp_path / "tools" / "support.yaml"
    shared.write_text(TOOLS_YAML, encoding="utf-8")
    write(tmp_path, "a", "---\ntools: tools/support.yaml\n---\nA\n")
    write(tmp_path, "b", "---\ntools: tools/support.yaml\n---\nB\n")
    registry = PromptRegistry(tmp_path)
    a, b = registry.get("a"), registry.get("b")
    assert a.call_params["tools"] == b.call_params["tools"]
    before = a.content_hash
    shared.write_text(TOOLS_YAML.replace("Hand over to a human", "Ask a human"), encoding="utf-8")
    after = PromptRegistry(tmp_path).get("a")
    assert after.content_hash != before  # the lock sees an edited tool set as an edited version
    assert after.call_params["tools"][1]["function"]["description"] == "Ask a human"


@pytest.mark.parametrize(("tools", "message"), [
    ("  - name: f\n    parameters: {type: objekt}\n", "not a valid JSON Schema"),
    ("  - name: f\n  - name: f\n", "declared twice"),
    ("  - name: 'bad name'\n", "name must be"),
    ("  - name: f\n    params: {}\n", "unknown key 'params'"),
])
def test_bad_tool_declarations_name_file_line_and_tool(tmp_path: Path, tools: str, message: str) -> None:
    path = write(tmp_path, "agent", "---\ndescription: x\ntools:\n" + tools + "---\nHi\n")
    with pytest.raises(PromptError, match=message) as info:
        PromptRegistry(tmp_path).get("agent")
    err = info.value
    assert str(path) in str(err) and ":3" in str(err)  # the file and the line of `tools:`


def test_unknown_tool_choice_and_missing_shared_file(tmp_path: Path) -> None:
    write(tmp_path, "a", "---\ntools: [{name: f}]\ntool_choice: g\n---\nHi\n")
    with pytest.raises(PromptError, match="tool_choice 'g'"):
        PromptRegistry(tmp_path).get("a")
    write(tmp_path, "b", "---\ntools: tools/none.yaml\n---\nHi\n")
    with pytest.raises(PromptError, match=r"cannot read tools file 'tools/none\.yaml'"):
        PromptRegistry(tmp_path).get("b")
    write(tmp_path, "c", "---\nresponse_format: {type: object, properties: 3}\n---\nHi\n")
    with pytest.raises(PromptError, match="response_format is not a valid JSON Schema"):
        PromptRegistry(tmp_path).get("c")


def test_conversation_renders_structured_messages(tmp_path: Path) -> None:
    write(tmp_path, "chat", "---\ninputs:\n  history: {type: list}\n  question: {type: string}\n---\n"
          '{% message "system" %}Be kind.{% endmessage %}\n{% conversation history %}\n'
          '{% message "user" %}{{ question }}{% endmessage %}\n')
    history = [
        {"role": "user", "content": [{"type": "text", "text": "Look"},
                                     {"type": "image_url", "image_url": {"url": "https://x.invalid/a.png"}}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "lookup_order", "arguments": '{"order_id": "A"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "shipped"},
        {"role": "assistant", "content": "It shipped."},
    ]
    messages = PromptRegistry(tmp_path).get("chat").render({"history": history, "question": "When?"})
    assert [m.role for m in messages] == ["system", "user", "assistant", "tool", "assistant", "user"]
    assert messages[1].parts is not None and messages[1].parts[1]["type"] == "image_url"
    assert messages[2].tool_calls[0].arguments == {"order_id": "A"}
    assert messages[3].tool_call_id == "c1" and messages[3].content == "shipped"
    assert [m.to_dict() for m in messages[1:5]] == history


def test_conversation_of_a_non_list_is_a_prompt_error(tmp_path: Path) -> None:
    write(tmp_path, "chat", "---\ninputs:\n  history: {type: any}\n---\n{% conversation history %}\n")
    pv = PromptRegistry(tmp_path).get("chat")
    with pytest.raises(PromptError, match="conversation needs a list"):
        pv.render({"history": "hello"})
    with pytest.raises(PromptError, match="conversation item 0: role must be one of"):
        pv.render({"history": [{"role": "robot", "content": "x"}]})


def test_cli_exits_2_on_a_tool_schema_that_is_not_json_schema(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    (tmp_path / "pyproject.toml").write_text('[tool.llmops]\nprompts_dir = "prompts"\n', encoding="utf-8")
    path = write(tmp_path / "prompts", "agent", "---\ntools:\n  - name: f\n    parameters: {type: objekt}\n---\nHi\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), "COLUMNS": "80"}
    out = subprocess.run([sys.executable, "-m", "llmops", "prompts", "render", "agent"], cwd=tmp_path,
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 2, out.stdout + out.stderr
    assert f"{path}:2" in out.stderr and "not a valid JSON Schema" in out.stderr and "Traceback" not in out.stderr
