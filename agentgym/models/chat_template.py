"""The chat template of agentgym's tiny models: Qwen2.5 / Hermes style, with tool calls.

The layout follows Qwen2.5's template so that what the proxy learns on the tiny model carries
over to real checkpoints::

    <|im_start|>system
    {system prompt}

    # Tools
    ...
    <tools>
    {"type": "function", "function": {...}}
    </tools>
    ...<|im_end|>
    <|im_start|>user
    {content}<|im_end|>
    <|im_start|>assistant
    {content}
    <tool_call>
    {"name": "bash", "arguments": {"command": "ls"}}
    </tool_call><|im_end|>
    <|im_start|>user
    <tool_response>
    {tool output}
    </tool_response>
    <tool_response>
    {second tool output}
    </tool_response><|im_end|>
    <|im_start|>assistant

Properties the proxy relies on (tested in ``tests/unit/models/test_chat_template.py``):

* prefix-stable: the rendering of ``messages[:k]`` that ends after an assistant turn (no
  generation prompt) is a string prefix of the rendering of ``messages[:n]`` for ``n > k``;
* what the model samples after the generation prompt (``content``, then each tool call, then
  ``<|im_end|>``) is exactly how the template renders that assistant message back;
* ``content`` may be a string, ``None`` or a list of ``{"type": "text", "text": ...}`` parts;
  tool-call ``arguments`` may be a dict (rendered with ``tojson``) or a JSON string (verbatim),
  and a tool call may be OpenAI-shaped (``{"type": "function", "function": {...}}``) or flat.
"""

from __future__ import annotations

DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."

CHAT_TEMPLATE = (
    # content: a string, None, or a list of text parts (other part types are refused).
    "{%- macro render_content(content) -%}"
    "{%- if content is none -%}"
    "{%- elif content is string -%}{{- content -}}"
    "{%- else -%}"
    "{%- for part in content -%}"
    "{%- if part is string -%}{{- part -}}"
    "{%- elif part.type == 'text' -%}{{- part.text -}}"
    "{%- else -%}{{- raise_exception('only text content parts are supported, got ' ~ part.type) -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{%- endmacro -%}"
    # System turn: the first message if it is a system message, else a default prompt.
    "{%- if messages and messages[0].role == 'system' -%}"
    "{%- set system_prompt = render_content(messages[0].content) -%}"
    "{%- set first = 1 -%}"
    "{%- else -%}"
    "{%- set system_prompt = '" + DEFAULT_SYSTEM_PROMPT + "' -%}"
    "{%- set first = 0 -%}"
    "{%- endif -%}"
    "{{- '<|im_start|>system\\n' + system_prompt -}}"
    "{%- if tools -%}"
    "{{- '\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\n"
    "You are provided with function signatures within <tools></tools> XML tags:\\n<tools>' -}}"
    "{%- for tool in tools -%}{{- '\\n' + (tool | tojson) -}}{%- endfor -%}"
    "{{- '\\n</tools>\\n\\nFor each function call, return a json object with function name and "
    "arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n"
    "{\"name\": <function-name>, \"arguments\": <args-json-object>}\\n</tool_call>' -}}"
    "{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- for message in messages[first:] -%}"
    "{%- set i = loop.index0 + first -%}"
    "{%- if message.role == 'user' or message.role == 'system' -%}"
    "{{- '<|im_start|>' + message.role + '\\n' + render_content(message.content) + '<|im_end|>\\n' -}}"
    "{%- elif message.role == 'assistant' -%}"
    "{{- '<|im_start|>assistant\\n' + render_content(message.content) -}}"
    "{%- if message.tool_calls -%}"
    "{%- for tool_call in message.tool_calls -%}"
    "{%- if tool_call.function is defined -%}{%- set tool_call = tool_call.function -%}{%- endif -%}"
    # A tool call follows content on its own line; the first call of a content-less message
    # starts right after the generation prompt.
    "{%- if not loop.first or render_content(message.content) -%}{{- '\\n' -}}{%- endif -%}"
    "{{- '<tool_call>\\n{\"name\": \"' + tool_call.name + '\", \"arguments\": ' -}}"
    "{%- if tool_call.arguments is string -%}{{- tool_call.arguments -}}"
    "{%- else -%}{{- tool_call.arguments | tojson -}}{%- endif -%}"
    "{{- '}\\n</tool_call>' -}}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- elif message.role == 'tool' -%}"
    # Consecutive tool results share one user turn, in order.
    "{%- if i == 0 or messages[i - 1].role != 'tool' -%}{{- '<|im_start|>user' -}}{%- endif -%}"
    "{{- '\\n<tool_response>\\n' + render_content(message.content) + '\\n</tool_response>' -}}"
    "{%- if loop.last or messages[i + 1].role != 'tool' -%}{{- '<|im_end|>\\n' -}}{%- endif -%}"
    "{%- else -%}"
    "{{- raise_exception('unknown message role ' ~ message.role) -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)
"""Jinja chat template (Hugging Face ``apply_chat_template`` dialect)."""

__all__ = ["CHAT_TEMPLATE", "DEFAULT_SYSTEM_PROMPT"]
