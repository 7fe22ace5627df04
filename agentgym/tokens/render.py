"""Token-level chat rendering with the model's own chat template, new messages only.

The proxy never re-tokenises what the engine already produced. For a turn that extends an
earlier call it renders *only the new messages* and appends their ids to the earlier call's
exact ``prompt_ids + completion_ids``:

1. A *window* stands in for the history: the parent's last request message and its reply,
   behind a placeholder system message (or the real system prompt and tools, or the whole
   history, whichever the template needs: see below). ``B`` = the window's rendering, ``F`` =
   the window plus the new messages with the generation prompt.
2. If ``F`` does not start with ``B`` the template rewrites earlier turns once later ones are
   present (e.g. it strips reasoning): the ids cannot be reused -> ``None`` (the caller
   records ``TEMPLATE_NOT_PREFIX`` and renders from scratch).
3. Otherwise the new text is ``F[len(B):]``, preceded by whatever the template writes after the
   reply's end-of-turn token (``"\\n"`` for ChatML) — or by the end-of-turn token itself when
   the engine stopped without sampling it (``length`` or a stop string). Those framing tokens
   are not actions: they get ``action_mask = 0`` downstream.

Which window is exact depends on the template, so the renderer finds out once, on synthetic
conversations (tool calls, parallel tool results, reasoning, users after assistants, with and
without system prompt and tools): it compares what each window gives with what rendering the
whole history gives, and picks the smallest window that always agrees (``minimal``, ``system``
or ``full``). A template that numbers turns, say, gets ``full`` — correct, and as slow as
rendering the history every turn.

Text is tokenised in pieces only where an added token (``<|im_end|>``...) separates them, which
gives exactly the ids the whole text would. Observation spans (tokens of tool results and later
user turns) come from the tokenizer's character-to-token map, so ECHO can train on environment
text and not on template framing.
"""

from __future__ import annotations

import collections
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agentgym.errors import ProxyError
from agentgym.observation import OBSERVATION_ROLES, TargetsFn
from agentgym.tokens.messages import content_text, template_message
from agentgym.tokens.probe import PROBE_TOOL, key_policy, pick_window, synthetic

__all__ = ["ChatRenderer", "RenderedPrompt", "tools_digest_key"]

WINDOW_MODES = ("minimal", "system", "full")
_PLACEHOLDER = {"role": "system", "content": "S"}


@dataclass(frozen=True)
class RenderedPrompt:
    """Token ids for a prompt (or the new part of one) and where the observations are."""

    ids: tuple[int, ...]
    obs_spans: tuple[tuple[int, int], ...]
    """Half-open ranges into ``ids`` of environment output (the observation targets)."""
    obs_body_spans: tuple[tuple[int, int], ...] = ()
    """Half-open ranges of whole observation bodies (targets plus harness framing and warnings)."""
    full_text: str = ""
    """Template text of the *whole* prompt (``full`` window mode only, where the next turn needs it)."""


@dataclass(frozen=True)
class Continuation:
    """Template text to append after a parent's reply, before tokenising."""

    text: str
    bridge: int
    """Characters at the start of ``text`` that frame the parent's reply (never observations)."""
    full_text: str = ""


def _compile(template: str) -> Any:
    from transformers.utils.chat_template_utils import _compile_jinja_template

    return _compile_jinja_template(template)


class ChatRenderer:
    """Renders canonical (OpenAI-shaped) messages with a Hugging Face tokenizer's chat template.

    Args:
        tokenizer: a fast tokenizer with a chat template.
        window: ``None`` picks the smallest exact window for the template (see the module
            docstring); ``"full"`` always renders the whole history.
        cache_size: prompts rendered from scratch kept by content (identical first requests of a
            group, and shared system prompts and tool lists, are rendered once).
    """

    def __init__(self, tokenizer: Any, window: str | None = None, cache_size: int = 256) -> None:
        if not getattr(tokenizer, "chat_template", None):
            raise ProxyError("the model's tokenizer has no chat_template; agentgym renders prompts with it",
                             status=500, code="server_error")
        if not getattr(tokenizer, "is_fast", False):
            raise ProxyError("agentgym needs a fast (Rust) tokenizer for character offsets", status=500,
                             code="server_error")
        from tokenizers import Tokenizer

        self.tokenizer = tokenizer
        self.eos_text: str = tokenizer.eos_token
        self.eos_id: int = tokenizer.convert_tokens_to_ids(tokenizer.eos_token)
        backend = tokenizer.backend_tokenizer
        # Private copies: worker threads encode, the loop decodes, the engine thread has its own;
        # a Rust tokenizer borrowed mutably by one (HF sets padding on it) fails for the others.
        self._encoder = Tokenizer.from_str(backend.to_str())
        self._decoder = Tokenizer.from_str(backend.to_str())
        self._specials = tuple(sorted((t.content for t in tokenizer.added_tokens_decoder.values()), key=len))
        self._context = {k: v for k, v in tokenizer.special_tokens_map.items() if isinstance(v, str)}
        self._compiled: Any = None
        if isinstance(tokenizer.chat_template, str):
            try:
                self._compiled = _compile(tokenizer.chat_template)
            except Exception:  # a private transformers helper: fall back to the public path
                self._compiled = None
        self._cache: collections.OrderedDict[Any, Any] = collections.OrderedDict()
        self._cache_size = cache_size
        if self._compiled is not None and not self._direct_matches_hf():
            self._compiled = None
        self.policy = key_policy(self)
        self.window = window if window is not None else pick_window(self)
        if self.window not in WINDOW_MODES:
            raise ProxyError(f"window={window!r}: use one of {WINDOW_MODES}", status=500, code="server_error")
        self.max_token_chars = max((len(t) for t in tokenizer.get_vocab()), default=16)
        """An upper bound on the characters of one token: text longer than ``n *
        max_token_chars`` has more than ``n`` tokens (checked before tokenising)."""

    # -- text --------------------------------------------------------------------------------
    def render_text(self, messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None,
                    add_generation_prompt: bool) -> str:
        try:
            chat = [template_message(m) for m in messages]
            if self._compiled is not None:
                for m in chat:
                    if "reasoning_content" in m:
                        m["thinking"] = m["reasoning_content"]
                return str(self._compiled.render(messages=chat, tools=list(tools) if tools else None,
                                                 documents=None, add_generation_prompt=add_generation_prompt,
                                                 **self._context))
            return str(self.tokenizer.apply_chat_template(
                chat, tools=list(tools) if tools else None, tokenize=False,
                add_generation_prompt=add_generation_prompt))
        except ProxyError:
            raise
        except Exception as e:  # jinja raises for roles or shapes the template refuses; RecursionError too
            raise ProxyError(f"the chat template could not render these messages: {type(e).__name__}: "
                             f"{str(e)[:300]}", code="invalid_messages", param="messages") from None

    def _direct_matches_hf(self) -> bool:
        probe = synthetic()[0]
        try:
            ours = self.render_text(probe, [PROBE_TOOL], add_generation_prompt=True)
            self._compiled, saved = None, self._compiled
            theirs = self.render_text(probe, [PROBE_TOOL], add_generation_prompt=True)
            self._compiled = saved
        except ProxyError:
            return False
        return ours == theirs

    # -- ids ---------------------------------------------------------------------------------
    def encode(self, text: str) -> Any:
        """The tokenizer's encoding of ``text`` (ids and a character-to-token map). Releases the
        GIL while it runs, so a worker thread can tokenise while the event loop serves."""
        return self._encoder.encode_batch([text], add_special_tokens=False)[0]

    def safe_split(self, text: str, pos: int) -> bool:
        """Whether tokenising ``text[:pos]`` and ``text[pos:]`` apart gives the ids of ``text``:
        true when an added token (matched before any merge) ends or starts at ``pos``."""
        return any(text.startswith(t, pos - len(t)) or text.startswith(t, pos) for t in self._specials if t)

    @staticmethod
    def token_spans(enc: Any, char_spans: Sequence[tuple[int, int]], shift: int = 0,
                    char_shift: int = 0) -> tuple[tuple[int, int], ...]:
        """Half-open token ranges of the tokens overlapping any character span (``char_shift``
        is subtracted from the spans first, ``shift`` added to the token indices)."""
        out: list[tuple[int, int]] = []
        for s, e in char_spans:
            s, e = s - char_shift, e - char_shift
            if e <= s:
                continue
            first, last = enc.char_to_token(s), enc.char_to_token(e - 1)
            if first is None or last is None:
                continue
            a, b = first + shift, last + 1 + shift
            if out and out[-1][1] >= a:
                out[-1] = (out[-1][0], max(b, out[-1][1]))
            else:
                out.append((a, b))
        return tuple(out)

    @staticmethod
    def obs_char_spans(text: str, messages: Sequence[Mapping[str, Any]], first_new: int, acted: bool,
                       start_at: int = 0, targets: TargetsFn | None = None,
                       ) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """Character spans in ``text`` of the observation contents among ``messages[first_new:]``:
        (target spans, body spans). ``acted``: whether an assistant turn precedes
        ``messages[first_new]`` (user turns after one are observations, see
        :func:`agentgym.observation.is_observation`). Contents are found in order, so a repeated
        string maps to the right occurrence. ``targets`` narrows a body to its environment output
        (when the template rendered the content verbatim; otherwise the whole body is the target)."""
        target_spans: list[tuple[int, int]] = []
        body_spans: list[tuple[int, int]] = []
        cursor = start_at
        for i in range(first_new, len(messages)):
            role = messages[i].get("role")
            observed = role in OBSERVATION_ROLES or (role == "user" and acted)
            if role == "assistant":
                acted = True
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
            if observed:
                body_spans.append((pos, pos + len(body)))
                inner = targets(messages[i]) if targets is not None and verbatim else None
                if inner is None:
                    target_spans.append((pos, pos + len(body)))
                else:
                    target_spans.extend((pos + max(0, s), pos + min(len(body), e)) for s, e in inner if e > s)
            cursor = pos + len(body)
        return target_spans, body_spans

    # -- whole prompts -----------------------------------------------------------------------
    def prompt_text(self, messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None,
                    ) -> tuple[str, int, tuple[int, ...]]:
        """A whole prompt's text, and the ids of a leading piece of it already tokenised (the
        system prompt and tools, cached by content across sessions): ``(text, split, ids)``."""
        text = self.render_text(messages, tools, add_generation_prompt=True)
        n_sys = 0
        while n_sys < len(messages) and messages[n_sys].get("role") in ("system", "developer"):
            n_sys += 1
        if not n_sys:
            return text, 0, ()
        key = ("system", json.dumps([messages[:n_sys], tools], sort_keys=True, default=str))
        hit = self.cached(key)
        if hit is None:
            head = self.render_text(messages[:n_sys], tools, add_generation_prompt=False)
            hit = (head, tuple(self.encode(head).ids))
            self._remember(key, hit)
        head, ids = hit
        if not text.startswith(head) or not self.safe_split(text, len(head)):
            return text, 0, ()
        return text, len(head), ids

    def finish_prompt(self, text: str, split: int, head_ids: tuple[int, ...], enc: Any,
                      messages: Sequence[Mapping[str, Any]], targets: TargetsFn | None) -> RenderedPrompt:
        """Ids and observation spans of a whole prompt whose tail ``text[split:]`` was tokenised
        into ``enc``."""
        spans, bodies = self.obs_char_spans(text, messages, 0, acted=False, start_at=split, targets=targets)
        shift = len(head_ids)
        return RenderedPrompt(ids=head_ids + tuple(enc.ids),
                              obs_spans=self.token_spans(enc, spans, shift=shift, char_shift=split),
                              obs_body_spans=self.token_spans(enc, bodies, shift=shift, char_shift=split),
                              full_text=text if self.window == "full" else "")

    def render_prompt(self, messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None,
                      targets: TargetsFn | None = None) -> RenderedPrompt:
        """A whole prompt from scratch (first call of a lineage, or after a break)."""
        text, split, head = self.prompt_text(messages, tools)
        return self.finish_prompt(text, split, head, self.encode(text[split:]), messages, targets)

    def cached(self, key: Any) -> Any:
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
        return hit

    def _remember(self, key: Any, value: Any) -> None:
        self._cache[key] = value
        self._cache.move_to_end(key)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    remember = _remember

    # -- continuations -----------------------------------------------------------------------
    def window_of(self, history: Sequence[Mapping[str, Any]], reply: Mapping[str, Any],
                  tools: Sequence[Mapping[str, Any]] | None) -> tuple[list[Mapping[str, Any]], Any] | None:
        """The messages (and tools) standing in for ``history + [reply]`` in this renderer's window
        mode, or ``None`` when this history is too short for the window (render it whole)."""
        if self.window == "full" or not history:
            return [*history, reply], tools
        n_sys = 0
        while n_sys < len(history) and history[n_sys].get("role") in ("system", "developer"):
            n_sys += 1
        if n_sys >= len(history):
            return None
        if self.window == "minimal":
            return ([_PLACEHOLDER] if n_sys else []) + [history[-1], reply], None
        return [*history[:n_sys], history[-1], reply], tools

    def window_text(self, window: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None,
                    ) -> tuple[str, int]:
        """Rendering of a window ending with a reply, and where the reply's rendering starts."""
        before = self.render_text(window[:-1], tools, add_generation_prompt=True)
        text = self.render_text(window, tools, add_generation_prompt=False)
        return text, len(before) if text.startswith(before) else len(text)

    def continuation(self, window: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None,
                     base: tuple[str, int], parent_ended_with_eos: bool,
                     new: Sequence[Mapping[str, Any]]) -> Continuation | None:
        """Text to append after the parent's ``prompt_ids + completion_ids``, or ``None`` when the
        template does not render the parent's turns as a prefix once ``new`` follows them.

        Args:
            window: what :meth:`window_of` gave for the parent's history and reply.
            base: :meth:`window_text` of ``window``.
            parent_ended_with_eos: whether the parent's completion ids end with end-of-turn.
            new: the messages after the parent's reply.
        """
        parent_text, reply_start = base
        full = self.render_text([*window, *new], tools, add_generation_prompt=True)
        if not full.startswith(parent_text):
            return None
        reply_text = parent_text[reply_start:]
        cut = reply_text.rfind(self.eos_text)
        if cut < 0:
            bridge = ""
        elif parent_ended_with_eos:
            bridge = reply_text[cut + len(self.eos_text):]
        else:
            bridge = reply_text[cut:]
        return Continuation(text=bridge + full[len(parent_text):], bridge=len(bridge),
                            full_text=full if self.window == "full" else "")

    def finish_continuation(self, cont: Continuation, enc: Any, new: Sequence[Mapping[str, Any]],
                            targets: TargetsFn | None) -> RenderedPrompt:
        """Ids and observation spans of a continuation tokenised into ``enc``."""
        msgs = [{"role": "assistant"}, *new]  # the parent's reply precedes the new messages
        spans, bodies = self.obs_char_spans(cont.text, msgs, 1, acted=True, start_at=cont.bridge, targets=targets)
        return RenderedPrompt(ids=tuple(enc.ids), obs_spans=self.token_spans(enc, spans),
                              obs_body_spans=self.token_spans(enc, bodies), full_text=cont.full_text)

    def decode(self, ids: Sequence[int]) -> str:
        """Completion text for the client: a final end-of-turn token removed."""
        ids = list(ids)
        if ids and ids[-1] == self.eos_id:
            ids = ids[:-1]
        return str(self._decoder.decode(ids, skip_special_tokens=False))


def tools_digest_key(tools: Sequence[Mapping[str, Any]] | None, tool_choice: Any) -> bytes:
    """Root of a lineage's message hash chain: tools change the rendered system prompt."""
    return json.dumps([tools or [], tool_choice if tool_choice != "auto" else None], sort_keys=True).encode()
