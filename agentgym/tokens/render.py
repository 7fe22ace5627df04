"""Token-level chat rendering with the model's own chat template.

The proxy never re-tokenises what the engine already produced. For a turn that extends an
earlier call it renders *only the new messages* and appends their ids to the earlier call's
exact ``prompt_ids + completion_ids``. This module computes that continuation:

1. ``P`` = template text of the parent's messages plus its reply (no generation prompt);
   ``F`` = template text of the incoming messages with the generation prompt.
2. If ``F`` does not start with ``P`` the template rewrites earlier turns once later ones are
   present (e.g. it strips reasoning): the ids cannot be reused -> ``None`` (the caller
   records ``TEMPLATE_NOT_PREFIX`` and renders from scratch).
3. Otherwise the new text is ``F[len(P):]``, preceded by whatever the template writes after the
   reply's end-of-turn token (``"\\n"`` for ChatML) — or by the end-of-turn token itself when
   the engine stopped without sampling it (``length`` or a stop string). Those framing tokens
   are not actions: they get ``action_mask = 0`` downstream.

Observation spans (tokens of tool results and later user turns) come from the fast
tokenizer's character offsets, so ECHO can train on environment text and not on template
framing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agentgym.errors import ProxyError
from agentgym.observation import TargetsFn, is_observation
from agentgym.tokens.messages import content_text, template_message


@dataclass(frozen=True)
class RenderedPrompt:
    """Token ids for a prompt (or the new part of one) and where the observations are."""

    ids: tuple[int, ...]
    obs_spans: tuple[tuple[int, int], ...]
    """Half-open ranges into ``ids`` of environment output (the observation targets)."""
    obs_body_spans: tuple[tuple[int, int], ...] = ()
    """Half-open ranges of whole observation bodies (targets plus harness framing and warnings)."""
    full_text: str = ""
    """Template text of the *whole* prompt (with generation prompt), kept so the next turn
    need not render it again."""


class ChatRenderer:
    """Renders OpenAI-style messages with a Hugging Face tokenizer's chat template."""

    def __init__(self, tokenizer: Any) -> None:
        if not getattr(tokenizer, "chat_template", None):
            raise ProxyError("the model's tokenizer has no chat_template; agentgym renders prompts with it",
                             status=500, code="server_error")
        if not getattr(tokenizer, "is_fast", False):
            raise ProxyError("agentgym needs a fast (Rust) tokenizer for character offsets", status=500,
                             code="server_error")
        self.tokenizer = tokenizer
        self.eos_text: str = tokenizer.eos_token
        self.eos_id: int = tokenizer.convert_tokens_to_ids(tokenizer.eos_token)

    # -- text --------------------------------------------------------------------------------
    def render_text(self, messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None,
                    add_generation_prompt: bool) -> str:
        try:
            text = self.tokenizer.apply_chat_template(
                [template_message(m) for m in messages], tools=list(tools) if tools else None,
                tokenize=False, add_generation_prompt=add_generation_prompt)
        except ProxyError:
            raise
        except Exception as e:  # jinja raises for roles or shapes the template refuses
            raise ProxyError(f"the chat template could not render these messages: {e}",
                             code="invalid_messages", param="messages") from e
        return str(text)

    # -- ids ---------------------------------------------------------------------------------
    def _encode(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]

    def _obs_char_spans(self, text: str, messages: Sequence[Mapping[str, Any]], first_new: int,
                        start_at: int = 0, targets: TargetsFn | None = None,
                        ) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """Character spans in ``text`` of the observation contents among ``messages[first_new:]``:
        (target spans, body spans). Contents are found in order, so a repeated string maps to the
        right occurrence. ``targets`` narrows a body to its environment output (when the
        template rendered the content verbatim; otherwise the whole body is the target)."""
        target_spans: list[tuple[int, int]] = []
        body_spans: list[tuple[int, int]] = []
        cursor = start_at
        for i in range(first_new, len(messages)):
            body = content_text(messages[i].get("content"))
            if not body:
                continue
            verbatim = True
            pos = text.find(body, cursor)
            if pos < 0:  # the template transformed the text (e.g. stripped it): try trimmed
                body, verbatim = body.strip(), False
                pos = text.find(body, cursor) if body else -1
                if pos < 0:
                    continue
            if is_observation(messages, i):
                body_spans.append((pos, pos + len(body)))
                inner = targets(messages[i]) if targets is not None and verbatim else None
                if inner is None:
                    target_spans.append((pos, pos + len(body)))
                else:
                    target_spans.extend((pos + max(0, s), pos + min(len(body), e)) for s, e in inner if e > s)
            cursor = pos + len(body)
        return target_spans, body_spans

    @staticmethod
    def _token_spans(offsets: Sequence[tuple[int, int]], char_spans: Sequence[tuple[int, int]],
                     shift: int = 0) -> tuple[tuple[int, int], ...]:
        """Merge tokens overlapping any character span into half-open token ranges."""
        out: list[tuple[int, int]] = []
        j = 0
        for t, (s, e) in enumerate(offsets):
            while j < len(char_spans) and char_spans[j][1] <= s:
                j += 1
            if j < len(char_spans) and s < char_spans[j][1] and e > char_spans[j][0] and e > s:
                if out and out[-1][1] == t + shift:
                    out[-1] = (out[-1][0], t + shift + 1)
                else:
                    out.append((t + shift, t + shift + 1))
        return tuple(out)

    def render_prompt(self, messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None,
                      targets: TargetsFn | None = None) -> RenderedPrompt:
        """A whole prompt from scratch (first call of a lineage, or after a break)."""
        text = self.render_text(messages, tools, add_generation_prompt=True)
        ids, offsets = self._encode(text)
        spans, bodies = self._obs_char_spans(text, messages, 0, targets=targets)
        return RenderedPrompt(ids=tuple(ids), obs_spans=self._token_spans(offsets, spans),
                              obs_body_spans=self._token_spans(offsets, bodies), full_text=text)

    _PROBE = ({"role": "system", "content": "S"}, {"role": "user", "content": "U"})

    def isolated_reply_text(self, reply: Mapping[str, Any], tools: Sequence[Mapping[str, Any]] | None) -> str | None:
        """How the template renders ``reply`` as the last turn of a two-message probe
        conversation (cheap: no history). ``None`` when the probe is not prefix-stable."""
        before = self.render_text(self._PROBE, tools, add_generation_prompt=True)
        after = self.render_text([*self._PROBE, reply], tools, add_generation_prompt=False)
        return after[len(before):] if after.startswith(before) else None

    def render_continuation(self, parent_text: str, parent_reply_start: int, parent_ended_with_eos: bool,
                            messages: Sequence[Mapping[str, Any]], n_parent_messages: int,
                            tools: Sequence[Mapping[str, Any]] | None, full: str | None = None,
                            targets: TargetsFn | None = None) -> RenderedPrompt | None:
        """Ids to append to the parent's ``prompt_ids + completion_ids``, or ``None`` when the
        template does not render the parent's turns as a prefix of these messages.

        Args:
            parent_text: template text of the parent's messages and reply, no generation prompt.
            parent_reply_start: where the reply's rendering starts in ``parent_text``.
            parent_ended_with_eos: whether the parent's completion ids end with end-of-turn.
            messages: the incoming messages; the first ``n_parent_messages`` match the parent's
                messages plus its reply.
            full: the template text of ``messages`` with the generation prompt, if already rendered.
        """
        if full is None:
            full = self.render_text(messages, tools, add_generation_prompt=True)
        if not full.startswith(parent_text):
            return None
        reply_text = parent_text[parent_reply_start:]
        cut = reply_text.rfind(self.eos_text)
        if cut < 0:
            bridge = ""
        elif parent_ended_with_eos:
            bridge = reply_text[cut + len(self.eos_text):]
        else:
            bridge = reply_text[cut:]
        text = bridge + full[len(parent_text):]
        ids, offsets = self._encode(text)
        spans, bodies = self._obs_char_spans(text, messages, n_parent_messages, start_at=len(bridge), targets=targets)
        return RenderedPrompt(ids=tuple(ids), obs_spans=self._token_spans(offsets, spans),
                              obs_body_spans=self._token_spans(offsets, bodies), full_text=full)

    def decode(self, ids: Sequence[int]) -> str:
        """Completion text for the client: special end-of-turn tokens removed."""
        ids = list(ids)
        if ids and ids[-1] == self.eos_id:
            ids = ids[:-1]
        return str(self.tokenizer.decode(ids, skip_special_tokens=False))


def tools_digest_key(tools: Sequence[Mapping[str, Any]] | None, tool_choice: Any) -> bytes:
    """Root of a session's message hash chain: tools change the rendered system prompt."""
    return json.dumps([tools or [], tool_choice if tool_choice != "auto" else None], sort_keys=True).encode()
