"""The tiny model's chat template: layout of tools, tool calls and tool results; prefix stability."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

BASH = {"type": "function", "function": {"name": "bash", "description": "Run a command.",
                                         "parameters": {"type": "object", "properties": {"command": {"type": "string"}}}}}


def render(tok: Any, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None,
           gen: bool = False) -> str:
    return str(tok.apply_chat_template(messages, tools=tools, tokenize=False, add_generation_prompt=gen))


def test_tools_section_lists_each_tool_as_json(tiny_tokenizer: Any) -> None:
    read = {"type": "function", "function": {"name": "read_file", "parameters": {}}}
    text = render(tiny_tokenizer, [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
                  tools=[BASH, read])
    assert text.startswith("<|im_start|>system\nBe brief.\n\n# Tools\n")
    assert f"<tools>\n{json.dumps(BASH)}\n{json.dumps(read)}\n</tools>" in text
    assert text.endswith("</tool_call><|im_end|>\n<|im_start|>user\nhi<|im_end|>\n")


def test_default_system_prompt_without_tools(tiny_tokenizer: Any) -> None:
    text = render(tiny_tokenizer, [{"role": "user", "content": "hi"}], gen=True)
    assert text == ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
                    "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")


@pytest.mark.parametrize("arguments", [{"command": "ls -la"}, '{"command": "ls -la"}'])
@pytest.mark.parametrize("openai_shape", [True, False])
def test_tool_call_arguments_dict_or_string(tiny_tokenizer: Any, arguments: Any, openai_shape: bool) -> None:
    call: dict[str, Any] = {"name": "bash", "arguments": arguments}
    if openai_shape:
        call = {"id": "call_1", "type": "function", "function": call}
    msgs = [{"role": "user", "content": "list"}, {"role": "assistant", "content": None, "tool_calls": [call]}]
    text = render(tiny_tokenizer, msgs)
    assert text.endswith('<|im_start|>assistant\n<tool_call>\n{"name": "bash", "arguments": {"command": "ls -la"}}'
                         "\n</tool_call><|im_end|>\n")


def test_content_then_several_tool_calls(tiny_tokenizer: Any) -> None:
    calls = [{"type": "function", "function": {"name": "bash", "arguments": {"command": c}}} for c in ("pwd", "ls")]
    msgs = [{"role": "user", "content": "go"}, {"role": "assistant", "content": "Looking.", "tool_calls": calls}]
    assert render(tiny_tokenizer, msgs).endswith(
        '<|im_start|>assistant\nLooking.\n<tool_call>\n{"name": "bash", "arguments": {"command": "pwd"}}\n</tool_call>'
        '\n<tool_call>\n{"name": "bash", "arguments": {"command": "ls"}}\n</tool_call><|im_end|>\n')


def test_consecutive_tool_results_share_one_user_turn(tiny_tokenizer: Any) -> None:
    msgs = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": "", "tool_calls": [{"name": "bash", "arguments": {"command": "a"}},
                                                             {"name": "bash", "arguments": {"command": "b"}}]},
        {"role": "tool", "tool_call_id": "1", "content": "out a"},
        {"role": "tool", "tool_call_id": "2", "content": [{"type": "text", "text": "out "}, {"type": "text", "text": "b"}]},
    ]
    text = render(tiny_tokenizer, msgs, gen=True)
    assert text.endswith("</tool_call><|im_end|>\n<|im_start|>user\n<tool_response>\nout a\n</tool_response>\n"
                         "<tool_response>\nout b\n</tool_response><|im_end|>\n<|im_start|>assistant\n")
    assert text.count("<|im_start|>user") == 2


def test_content_parts_render_like_strings(tiny_tokenizer: Any) -> None:
    parts = [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]
    assert render(tiny_tokenizer, parts) == render(tiny_tokenizer, [{"role": "user", "content": "ab"}])


def test_unknown_role_and_non_text_parts_are_refused(tiny_tokenizer: Any) -> None:
    with pytest.raises(Exception, match="unknown message role"):
        render(tiny_tokenizer, [{"role": "critic", "content": "x"}])
    with pytest.raises(Exception, match="only text content parts"):
        render(tiny_tokenizer, [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}])


# -- prefix stability over random conversations ------------------------------------------------

TEXTS = ["hi", "", "ünïcødé ✓", "line1\nline2", "  spaced  ", "{\"json\": true}", "<b>tag</b>", "a" * 50]


def _content(rng: random.Random) -> Any:
    text = rng.choice(TEXTS)
    if rng.random() < 0.25:
        cut = rng.randint(0, len(text))
        return [{"type": "text", "text": text[:cut]}, {"type": "text", "text": text[cut:]}]
    return text


def _tool_call(rng: random.Random, i: int) -> dict[str, Any]:
    args: Any = {"command": rng.choice(["ls", "echo 'x y'", "cat \"f\"", "printf 'a\\nb'"]), "n": rng.randint(0, 9)}
    if rng.random() < 0.5:
        args = json.dumps(args)
    call = {"name": rng.choice(["bash", "read_file"]), "arguments": args}
    return {"id": f"c{i}", "type": "function", "function": call} if rng.random() < 0.7 else call


def random_conversation(rng: random.Random) -> list[dict[str, Any]]:
    msgs: list[dict[str, Any]] = []
    if rng.random() < 0.6:
        msgs.append({"role": "system", "content": _content(rng)})
    msgs.append({"role": "user", "content": _content(rng)})
    for _ in range(rng.randint(1, 5)):
        if rng.random() < 0.6:
            calls = [_tool_call(rng, i) for i in range(rng.randint(1, 3))]
            content = rng.choice([None, "", *TEXTS[:4]])
            msgs.append({"role": "assistant", "content": content, "tool_calls": calls})
            msgs.extend({"role": "tool", "tool_call_id": c.get("id", ""), "content": _content(rng)} for c in calls)
        else:
            msgs.append({"role": "assistant", "content": _content(rng)})
            msgs.append({"role": "user", "content": _content(rng)})
    if rng.random() < 0.5:
        msgs.append({"role": "assistant", "content": _content(rng)})
    return msgs


def _completion(message: dict[str, Any]) -> str:
    """What the model samples for ``message`` after the generation prompt (without <|im_end|>)."""
    content = message.get("content") or ""
    if isinstance(content, list):
        content = "".join(p["text"] for p in content)
    calls = []
    for call in message.get("tool_calls") or []:
        fn = call.get("function", call)
        args = fn["arguments"] if isinstance(fn["arguments"], str) else json.dumps(fn["arguments"])
        calls.append(f'<tool_call>\n{{"name": "{fn["name"]}", "arguments": {args}}}\n</tool_call>')
    return "\n".join([content, *calls]) if content else "\n".join(calls)


@pytest.mark.parametrize("seed", range(40))
def test_prefix_stable_over_random_conversations(tiny_tokenizer: Any, seed: int) -> None:
    rng = random.Random(seed)
    msgs = random_conversation(rng)
    tools = [BASH] if seed % 2 else None
    full = [""] + [render(tiny_tokenizer, msgs[:n], tools) for n in range(1, len(msgs) + 1)]
    for k, msg in enumerate(msgs):
        if msg["role"] != "assistant":
            continue
        # Rendering up to and including this assistant turn is a prefix of every longer rendering,
        # as text and as tokens.
        head = full[k + 1]
        head_ids = tiny_tokenizer(head, add_special_tokens=False)["input_ids"]
        for n in range(k + 2, len(msgs) + 1):
            assert full[n].startswith(head), (k, n)
            assert tiny_tokenizer(full[n], add_special_tokens=False)["input_ids"][: len(head_ids)] == head_ids
        # What the model samples after the generation prompt renders back verbatim.
        prompt = render(tiny_tokenizer, msgs[:k], tools, gen=True)
        assert head == prompt + _completion(msg) + "<|im_end|>\n"
