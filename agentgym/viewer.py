"""A self-contained HTML viewer for trajectories: one static file, no network, no server.

The page has a sortable summary table, then one card per trajectory: its reward, stop reason
and error, the steps as a timeline (observation, action, anchor, validity, step reward) and,
per segment, a collapsible token view where every token is coloured by its role (sampled
action, environment observation, template/prompt) with its id and logprob in a tooltip.

>>> write_view(Path("runs/demo"))                                   # doctest: +SKIP
PosixPath('runs/demo/view.html')

Everything taken from a trajectory is escaped: harness output is untrusted, and an observation
holding ``<script>`` must show as text, never run.
"""

from __future__ import annotations

import codecs
import functools
import html
import json
import logging
import math
import os
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agentgym import export
from agentgym.errors import ConfigError
from agentgym.types import Segment, Step, StopReason, Trajectory

__all__ = ["render_html", "write_view"]

log = logging.getLogger(__name__)

MAX_TOKENS_PER_SEGMENT = 4000
"""Tokens rendered per segment by default; longer segments show their head and tail."""
MAX_TEXT_CHARS = 20000
"""Characters shown per observation, action or error message (head and tail kept)."""

_OK_STOPS = {StopReason.COMPLETED}
_SOFT_STOPS = {StopReason.STEP_LIMIT, StopReason.TIMEOUT}


# -- token text --------------------------------------------------------------------------------
def _byte_level_table() -> dict[str, int]:
    """GPT-2's printable-unicode stand-ins for bytes, reversed (char -> byte)."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    out = {chr(b): b for b in keep}
    n = 0
    for b in range(256):
        if b not in keep:
            out[chr(256 + n)] = b
            n += 1
    return out


def _decoder_types(tokenizer: Any) -> set[str]:
    """Types of the fast tokenizer's decoder pipeline (``ByteLevel``, ``Metaspace``...)."""
    try:
        spec = json.loads(tokenizer.backend_tokenizer.to_str()).get("decoder") or {}
    except Exception:
        return set()
    found: set[str] = set()
    stack = [spec]
    while stack:
        d = stack.pop()
        if isinstance(d, dict):
            found.add(str(d.get("type")))
            stack.extend(d.get("decoders") or [])
    return found


class _TokenText:
    """Exact bytes per token id, so a segment's tokens decode one by one without loss.

    Byte-level BPE (GPT-2, Qwen, Llama 3) and SentencePiece byte-fallback tokens map back to
    raw bytes; a character split across tokens appears on the token that completes it. Other
    tokenizers fall back to decoding each id alone.
    """

    _BYTE_PIECE = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        kinds = _decoder_types(tokenizer)
        self.byte_level = "ByteLevel" in kinds or hasattr(tokenizer, "byte_decoder")
        self.metaspace = "Metaspace" in kinds or "Replace" in kinds
        self.table = _byte_level_table()
        added = getattr(tokenizer, "added_tokens_decoder", None) or {}
        self.added = {int(i): str(getattr(t, "content", t)) for i, t in dict(added).items()}
        self.cache: dict[int, bytes] = {}
        try:
            self.size: int | None = len(tokenizer)
        except TypeError:
            self.size = None

    def bytes_of(self, token_id: int) -> bytes:
        b = self.cache.get(token_id)
        if b is None:
            b = self.cache[token_id] = self._bytes(token_id)
        return b

    def _bytes(self, token_id: int) -> bytes:
        if token_id in self.added:
            return self.added[token_id].encode()
        if token_id < 0 or (self.size is not None and token_id >= self.size):
            return f"⟨{token_id}⟩".encode()  # not in this vocabulary: a different tokenizer?
        piece = None
        if hasattr(self.tokenizer, "convert_ids_to_tokens"):
            try:
                piece = self.tokenizer.convert_ids_to_tokens(token_id)
            except Exception:  # some tokenizers raise on ids they cannot map: try decode, then the id
                piece = None
        if isinstance(piece, str):
            if self.byte_level and all(c in self.table for c in piece):
                return bytes(self.table[c] for c in piece)
            if self.metaspace:
                m = self._BYTE_PIECE.match(piece)
                return bytes([int(m.group(1), 16)]) if m else piece.replace("▁", " ").encode()
        try:
            return str(self.tokenizer.decode([token_id], skip_special_tokens=False)).encode()
        except Exception:
            return f"⟨{token_id}⟩".encode()


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_GLYPHS = {"\n": "↵", "\t": "→", "\r": "␍"}


def _control_html(m: re.Match[str]) -> str:
    ch = m.group()
    glyph = _CONTROL_GLYPHS.get(ch, f"\\x{ord(ch):02x}")
    return f'<span class="ws">{glyph}</span>' + (ch if ch in "\n\t" else "")


@functools.lru_cache(maxsize=1 << 16)
def _visible(text: str) -> str:
    """Escaped token text with newlines, tabs and other control characters made visible."""
    if text and text.strip(" ") == "":
        return f'<span class="ws">{"·" * len(text)}</span>'
    return _CONTROL.sub(_control_html, html.escape(text))


# -- formatting helpers ------------------------------------------------------------------------
def _e(x: object) -> str:
    return html.escape(str(x), quote=True)


def _num(x: float) -> str:
    return f"{x:.4g}"


def _pct(x: float) -> str:
    return "100%" if x >= 1.0 else f"{x:.1%}"


def _clip(text: str, limit: int = MAX_TEXT_CHARS) -> str:
    """Escaped text; past ``limit`` characters keeps the head and tail with a marker between."""
    if len(text) <= limit:
        return _e(text)
    half = limit // 2
    gap = len(text) - 2 * half
    return (f"{_e(text[:half])}<span class=\"gap\">[… {gap:,} characters not shown …]</span>"
            f"{_e(text[-half:])}")


def _stop_class(stop: StopReason) -> str:
    return "ok" if stop in _OK_STOPS else "warn" if stop in _SOFT_STOPS else "bad"


def _reward_class(r: float) -> str:
    return "pos" if r > 0 else "neg" if r < 0 else "zero"


# -- tokens ------------------------------------------------------------------------------------
def _token_span(seg: Segment, i: int, text: str | None) -> str:
    tid = seg.input_ids[i]
    if seg.action_mask[i]:
        lp = seg.logprobs[i]
        p = math.exp(min(lp, 0.0))
        tip = f"id {tid} · logprob {lp:.4f} · p {p:.3f} · step {seg.turn_index[i]} · v{seg.policy_version[i]}"
        cls = f"tk act p{min(int(p * 5), 4)}" + (" low" if p < 0.1 else "")
    else:
        tip = f"id {tid}"
        cls = "tk obs" if seg.obs_mask[i] else "tk tpl"
    body = str(tid) if text is None else _visible(text)
    return f'<span class="{cls}" title="{tip}">{body}</span>'


def _token_run(seg: Segment, start: int, end: int, texts: _TokenText | None) -> list[str]:
    out: list[str] = []
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    turn = None if start == 0 else seg.turn_index[start - 1]
    for i in range(start, end):
        if seg.turn_index[i] != turn:
            turn = seg.turn_index[i]
            out.append(f'<span class="turn">{"prompt" if turn < 0 else f"step {turn}"}</span>')
        text = None if texts is None else decoder.decode(texts.bytes_of(seg.input_ids[i]))
        out.append(_token_span(seg, i, text))
    return out


def _segment_html(t_index: int, k: int, seg: Segment, texts: _TokenText | None, cap: int) -> str:
    n = len(seg)
    n_act = sum(seg.action_mask)
    n_obs = sum(1 for a, o in zip(seg.action_mask, seg.obs_mask, strict=False) if o and not a)
    if n <= cap:
        body = _token_run(seg, 0, n, texts)
    else:  # the head holds the system prompt, the tail the latest turns: keep more of the tail
        head = cap // 4
        tail_start = n - (cap - head)
        body = [*_token_run(seg, 0, head, texts),
                f'<div class="gap more">… {tail_start - head:,} tokens not shown (showing the first {head:,} '
                f'and last {n - tail_start:,} of {n:,}; raise max_tokens_per_segment to see more) …</div>',
                *_token_run(seg, tail_start, n, texts)]
    calls = ", ".join(seg.call_ids)
    return (
        f'<details class="seg" id="t{t_index}-s{k}"><summary>tokens · segment {k} · {n:,} tokens: '
        f'<span class="k act">{n_act:,} action</span> <span class="k obs">{n_obs:,} observation</span> '
        f'<span class="k tpl">{n - n_act - n_obs:,} template</span> · agent {_e(seg.agent_id)}</summary>'
        f'<div class="brk"><span>break: {_e(seg.break_reason.value)}</span></div>'
        f'<div class="calls">calls: {_e(calls) or "—"}</div>'
        f'<div class="toks">{"".join(body)}</div></details>')


# -- steps and trajectories --------------------------------------------------------------------
def _step_html(step: Step) -> str:
    badge = '<span class="badge ok">valid</span>' if step.valid else '<span class="badge bad">invalid</span>'
    anchor = (f'<div class="anchor" title="anchor (GiGPO state key)">anchor: {_clip(step.anchor, 300)}</div>'
              if step.anchor else "")
    obs = (f'<div class="role">observation</div><pre class="obs clip">{_clip(step.observation)}</pre>'
           if step.observation else '<div class="role muted">no new observation</div>')
    act = (f'<pre class="act clip">{_clip(step.action)}</pre>' if step.action
           else '<div class="muted">(empty action)</div>')
    return (
        f'<div class="step{"" if step.valid else " invalid"}">'
        f'<div class="step-head"><b>step {step.index}</b> {badge} '
        f'<span class="sr {_reward_class(step.reward)}">reward {_num(step.reward)}</span>'
        f'<span class="meta">call {_e(step.call_id)} · segment {step.segment_index} · '
        f'action tokens {step.action_span[0]}–{step.action_span[1]}'
        f'{"" if step.agent_id == "main" else " · agent " + _e(step.agent_id)}</span></div>'
        f'{obs}{anchor}<div class="role">action</div>{act}</div>')


def _trajectory_html(i: int, t: Trajectory, texts: _TokenText | None, cap: int) -> str:
    facts = [f"task <b>{_e(t.task_id)}</b>", f"sample {t.sample_index}"]
    facts += [f"{label} {_e(v)}" for label, v in (("harness", t.harness), ("env", t.env)) if v]
    if t.agent_id != "main":
        facts.append(f"agent {_e(t.agent_id)}")
    if t.ended_at > t.started_at > 0:
        facts.append(f"{t.ended_at - t.started_at:.1f} s")
    facts.append(f"{t.sampled_tokens:,} sampled / {t.trained_tokens:,} trained tokens "
                 f"({_pct(t.delivered_fraction)} delivered)")
    err = ""
    if t.error is not None:
        err = (f'<div class="error"><b>{_e(t.error.type)}</b> at the {_e(t.error.boundary)} boundary'
               f'<pre class="clip">{_clip(t.error.message)}</pre></div>')
    steps: list[str] = []
    seg_shown = -1
    for s in t.steps:
        if s.segment_index != seg_shown and 0 <= s.segment_index < len(t.segments):
            reason = t.segments[s.segment_index].break_reason.value
            steps.append(f'<div class="brk"><a href="#t{i}-s{s.segment_index}">segment {s.segment_index}'
                         f' · break: {_e(reason)}</a></div>')
            seg_shown = s.segment_index
        steps.append(_step_html(s))
    if not steps:
        steps.append('<div class="muted">no steps recorded</div>')
    segs = "".join(_segment_html(i, k, seg, texts, cap) for k, seg in enumerate(t.segments))
    meta = ""
    if t.metadata:
        dump = json.dumps(dict(t.metadata), indent=2, sort_keys=True, default=str)
        meta = f'<details class="metadata"><summary>metadata</summary><pre>{_clip(dump)}</pre></details>'
    return (
        f'<section class="traj" id="t{i}"><div class="traj-head">'
        f'<h2><span class="idx">#{i}</span> <span class="tid">{_e(t.id)}</span></h2>'
        f'<span class="badge reward {_reward_class(t.reward)}">reward {_num(t.reward)}</span>'
        f'<span class="badge {_stop_class(t.stop_reason)}">{_e(t.stop_reason.value)}</span>'
        f'<span class="badge plain">{len(t.steps)} steps</span>'
        f'<a class="top" href="#summary">↑ summary</a></div>'
        f'<div class="facts">{" · ".join(facts)}</div>{err}'
        f'<div class="timeline">{"".join(steps)}</div>'
        f'<div class="segs">{segs or "<div class=muted>no segments</div>"}</div>{meta}</section>')


def _summary_html(trajectories: Sequence[Trajectory]) -> str:
    rows = []
    for i, t in enumerate(trajectories):
        err = t.error.type if t.error else ""
        rows.append(
            f'<tr data-href="#t{i}"><td data-v="{i}">{i}</td>'
            f'<td class="long" title="{_e(t.id)}"><a href="#t{i}">{_e(t.id)}</a></td>'
            f'<td class="long" title="{_e(t.task_id)}">{_e(t.task_id)}</td>'
            f'<td data-v="{t.reward}" class="num {_reward_class(t.reward)}">{_num(t.reward)}</td>'
            f'<td><span class="badge {_stop_class(t.stop_reason)}">{_e(t.stop_reason.value)}</span></td>'
            f'<td data-v="{len(t.steps)}" class="num">{len(t.steps)}</td>'
            f'<td data-v="{t.sampled_tokens}" class="num">{t.sampled_tokens:,}</td>'
            f'<td data-v="{t.trained_tokens}" class="num">{t.trained_tokens:,}</td>'
            f'<td data-v="{t.delivered_fraction}" class="num">{_pct(t.delivered_fraction)}</td>'
            f'<td class="{"errcell" if err else ""}">{_e(err)}</td></tr>')
    heads = ["#", "trajectory", "task", "reward", "stop reason", "steps", "sampled", "trained", "delivered",
             "error"]
    head = "".join(f'<th data-col="{k}">{h}</th>' for k, h in enumerate(heads))
    n = len(trajectories)
    mean = sum(t.reward for t in trajectories) / n if n else 0.0
    stops = Counter(t.stop_reason for t in trajectories)
    stop_badges = " ".join(f'<span class="badge {_stop_class(s)}">{_e(s.value)} × {c}</span>'
                           for s, c in stops.most_common())
    n_err = sum(1 for t in trajectories if t.error)
    return (
        f'<section id="summary"><div class="stats"><span><b>{n}</b> trajectories</span>'
        f'<span>mean reward <b>{_num(mean)}</b></span>'
        f'<span>solved <b>{sum(1 for t in trajectories if t.reward > 0)}</b></span>'
        f'<span>errors <b>{n_err}</b></span>{stop_badges}'
        f'<input id="filter" type="search" placeholder="filter rows…" aria-label="filter rows"></div>'
        f'<div class="tablewrap"><table id="summary-table"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'
        f'</section>')


def render_html(trajectories: Sequence[Trajectory], *, tokenizer: Any = None, title: str = "",
                max_tokens_per_segment: int = MAX_TOKENS_PER_SEGMENT) -> str:
    """One self-contained HTML page (inline CSS and JS, nothing fetched) for ``trajectories``.

    Args:
        trajectories: what to show, in this order.
        tokenizer: a Hugging Face tokenizer to decode token ids into text; without one the token
            views show ids.
        title: page heading (default ``"agentgym trajectories"``).
        max_tokens_per_segment: tokens rendered per segment; a longer segment shows its first
            quarter and last three quarters of this many, with a note about the rest.

    >>> from agentgym.types import Step, StopReason, Trajectory
    >>> step = Step(index=0, call_id="c0", segment_index=0, action_span=(0, 0), observation="<script>x</script>")
    >>> page = render_html([Trajectory(id="t0", task_id="hello", session_id="s0", segments=(), steps=(step,),
    ...                                reward=1.0, stop_reason=StopReason.COMPLETED)])
    >>> page.startswith("<!DOCTYPE html>"), "<script>x</script>" in page, "&lt;script&gt;x" in page
    (True, False, True)
    """
    if max_tokens_per_segment < 1:
        raise ConfigError(f"max_tokens_per_segment must be at least 1, got {max_tokens_per_segment}")
    texts = _TokenText(tokenizer) if tokenizer is not None else None
    heading = title or "agentgym trajectories"
    cards = "".join(_trajectory_html(i, t, texts, max_tokens_per_segment) for i, t in enumerate(trajectories))
    legend = ('<div class="legend">tokens: <span class="tk act p4">action (sampled)</span> '
              '<span class="tk act p1">less likely</span> <span class="tk act p0 low">p &lt; 0.1</span> '
              '<span class="tk obs">observation</span> <span class="tk tpl">template / prompt</span>'
              f'{"" if texts else " · no tokenizer: showing token ids"} · hover a token for its id and '
              'logprob · keys <kbd>j</kbd>/<kbd>k</kbd>: next/previous trajectory</div>')
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'\">"
        f"<title>{_e(heading)}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{_e(heading)}</h1>{legend}</header><main>"
        f"{_summary_html(trajectories)}{cards}</main><script>{_JS}</script></body></html>\n")


# -- files -------------------------------------------------------------------------------------
def _load_tokenizer(path: str) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path)
    except Exception as e:
        raise ConfigError(f"could not load a tokenizer from {path!r} ({type(e).__name__}: "
                          f"{str(e).splitlines()[0][:200] if str(e) else ''}); pass a local checkpoint "
                          "directory, or no tokenizer to show token ids") from e


def write_view(src: str | os.PathLike[str], out: str | os.PathLike[str] | None = None,
               tokenizer_path: str | None = None) -> Path:
    """Write the HTML view of a run directory or a dataset file; returns its path.

    Args:
        src: a run directory (reads ``episodes.jsonl``, else ``trajectories.parquet``) or a
            ``.jsonl``/``.parquet`` dataset.
        out: where to write (default ``<run dir>/view.html``, or the dataset path with ``.html``).
        tokenizer_path: checkpoint directory or hub id of the tokenizer; by default a run
            directory's ``run.json`` ``model_path`` is used when it loads, else token ids are shown.

    Raises:
        ConfigError: ``src`` holds no trajectories file, or ``tokenizer_path`` does not load.
    """
    src = Path(src)
    if src.is_dir():
        journal, parquet = src / "episodes.jsonl", src / "trajectories.parquet"
        if journal.exists():
            trajectories = export.read_jsonl(journal)
        elif parquet.exists():
            trajectories = export.read_parquet(parquet)
        else:
            raise ConfigError(f"{src} has neither episodes.jsonl nor trajectories.parquet; pass a run "
                              "directory (agentgym rollout --out DIR) or a .jsonl/.parquet dataset")
        dest = Path(out) if out is not None else src / "view.html"
    elif src.exists():
        trajectories = export.read(src)
        dest = Path(out) if out is not None else src.with_suffix(".html")
    else:
        raise ConfigError(f"{src} does not exist; pass a run directory or a .jsonl/.parquet dataset")
    tokenizer = None
    if tokenizer_path:
        tokenizer = _load_tokenizer(tokenizer_path)
    elif src.is_dir() and (src / "run.json").exists():
        model_path = json.loads((src / "run.json").read_text(encoding="utf-8")).get("model_path")
        if model_path:
            try:
                tokenizer = _load_tokenizer(str(model_path))
            except ConfigError as e:  # a run copied from elsewhere: ids are still worth a look
                log.warning("%s; showing token ids", e)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(render_html(trajectories, tokenizer=tokenizer, title=f"agentgym · {src.name}"),
                    encoding="utf-8")
    return dest


_CSS = """
:root{--bg:#f6f7f9;--card:#fff;--fg:#1d2330;--muted:#6b7280;--line:#e3e6eb;--code:#f3f4f6;
--ok:#15803d;--okbg:#dcfce7;--warn:#a16207;--warnbg:#fef3c7;--bad:#b91c1c;--badbg:#fee2e2;
--act:22,163,74;--obs:37,99,235;--tpl:148,148,160}
@media (prefers-color-scheme:dark){:root{--bg:#111418;--card:#1a1f26;--fg:#e5e7eb;--muted:#9aa3af;
--line:#2c333d;--code:#14181d;--okbg:#14361f;--ok:#6ee7a0;--warnbg:#3a2e0c;--warn:#fcd34d;--badbg:#3d1616;
--bad:#fca5a5}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif}
header{padding:16px 28px 10px;border-bottom:1px solid var(--line);background:var(--card)}
h1{margin:0 0 6px;font-size:20px}
main{padding:16px 28px;max-width:1400px}
pre,.toks,kbd{font:12.5px/1.5 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
pre{margin:0;white-space:pre-wrap;overflow-wrap:anywhere}
a{color:rgb(var(--obs));text-decoration:none}a:hover{text-decoration:underline}
.legend{color:var(--muted);font-size:12.5px}
kbd{border:1px solid var(--line);border-radius:3px;padding:0 4px}
.stats{display:flex;gap:18px;align-items:center;flex-wrap:wrap;margin-bottom:10px}
#filter{margin-left:auto;padding:4px 8px;border:1px solid var(--line);border-radius:6px;background:var(--card);color:var(--fg)}
table{border-collapse:collapse;width:100%;background:var(--card);border:1px solid var(--line);border-radius:8px}
th,td{padding:5px 10px;text-align:left;border-bottom:1px solid var(--line);white-space:nowrap}
td.long{max-width:24em;overflow:hidden;text-overflow:ellipsis}
.tablewrap{overflow-x:auto;border-radius:8px}
th{cursor:pointer;user-select:none;font-weight:600;font-size:12.5px;color:var(--muted);position:sticky;top:0;background:var(--card)}
th.asc::after{content:" ▲"}th.desc::after{content:" ▼"}
tbody tr{cursor:pointer}tbody tr:hover{background:rgba(var(--obs),.06)}
td.num{text-align:right;font-variant-numeric:tabular-nums}
td.errcell{color:var(--bad);font-weight:600}
.pos{color:var(--ok)}.neg{color:var(--bad)}.zero{color:var(--muted)}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;white-space:nowrap}
.badge.ok{background:var(--okbg);color:var(--ok)}.badge.warn{background:var(--warnbg);color:var(--warn)}
.badge.bad{background:var(--badbg);color:var(--bad)}.badge.plain{background:var(--code);color:var(--muted)}
.badge.reward.pos{background:var(--okbg)}.badge.reward.zero,.badge.reward.neg{background:var(--code)}
.traj{background:var(--card);border:1px solid var(--line);border-radius:10px;margin:22px 0;padding:14px 18px}
.traj:target{box-shadow:0 0 0 2px rgba(var(--obs),.5)}
.traj-head{display:flex;gap:10px;align-items:center;flex-wrap:wrap}
.traj-head h2{margin:0;font-size:16px;overflow-wrap:anywhere}
.idx{color:var(--muted);font-weight:400}
.top{margin-left:auto;font-size:12px}
.facts{color:var(--muted);font-size:12.5px;margin:4px 0 8px}.facts b{color:var(--fg)}
.error{background:var(--badbg);color:var(--bad);border-left:4px solid var(--bad);border-radius:6px;padding:8px 12px;margin:8px 0}
.error pre{color:var(--fg);margin-top:4px}
.timeline{margin:10px 0 6px;display:flex;flex-direction:column;gap:10px}
.step{border:1px solid var(--line);border-radius:8px;padding:8px 12px}
.step.invalid{border-color:var(--bad)}
.step-head{display:flex;gap:8px;align-items:center;flex-wrap:wrap;margin-bottom:4px}
.sr{font-size:12px;font-weight:600}
.meta{margin-left:auto;color:var(--muted);font-size:11.5px}
.role{font-size:11px;text-transform:uppercase;letter-spacing:.05em;color:var(--muted);margin:6px 0 2px}
pre.obs{background:rgba(var(--obs),.06);border-left:3px solid rgba(var(--obs),.7);padding:6px 10px;border-radius:4px}
pre.act{background:rgba(var(--act),.07);border-left:3px solid rgba(var(--act),.8);padding:6px 10px;border-radius:4px}
.clip{max-height:300px;overflow:auto}.clip.open{max-height:none}
.anchor{color:var(--muted);font-size:11.5px;margin-top:3px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.muted{color:var(--muted);font-style:italic}
.brk{display:flex;align-items:center;gap:8px;color:var(--muted);font-size:11.5px;margin:2px 0}
.brk::before,.brk::after{content:"";flex:1;border-top:1px dashed var(--muted);opacity:.6}
.seg{border:1px solid var(--line);border-radius:8px;margin:8px 0;padding:6px 12px}
.seg summary{cursor:pointer;font-size:12.5px;color:var(--muted)}
.seg[open] summary{margin-bottom:6px}
.k{font-weight:600}.k.act{color:rgb(var(--act))}.k.obs{color:rgb(var(--obs))}.k.tpl{color:rgb(var(--tpl))}
.calls{color:var(--muted);font-size:11px;margin-bottom:4px;overflow-wrap:anywhere}
.toks{white-space:pre-wrap;overflow-wrap:anywhere;background:var(--code);padding:8px 10px;border-radius:6px;max-height:600px;overflow:auto}
.tk{border-radius:2px;box-shadow:inset 0 0 0 1px rgba(0,0,0,.07);padding:0 .5px}
.tk:empty{padding:0 2px}
.tk.tpl{background:rgba(var(--tpl),.16);color:var(--muted)}
.tk.obs{background:rgba(var(--obs),.15)}
.tk.act.p0{background:rgba(var(--act),.10)}.tk.act.p1{background:rgba(var(--act),.20)}
.tk.act.p2{background:rgba(var(--act),.30)}.tk.act.p3{background:rgba(var(--act),.40)}
.tk.act.p4{background:rgba(var(--act),.50)}
.tk.low{text-decoration:underline wavy #d97706}
.tk:hover{outline:1px solid var(--fg)}
.ws{opacity:.45}
.turn{display:inline-block;font:10px system-ui,sans-serif;color:var(--muted);border:1px solid var(--line);border-radius:3px;padding:0 3px;margin:0 3px;vertical-align:1px;white-space:nowrap}
.gap{color:var(--warn);font-style:italic}.gap.more{margin:6px 0;font:12px system-ui,sans-serif}
.metadata summary{cursor:pointer;font-size:12.5px;color:var(--muted)}
"""

_JS = """
(function(){
const table=document.getElementById('summary-table');
if(table){
  const body=table.tBodies[0];
  table.querySelectorAll('th').forEach(th=>th.addEventListener('click',()=>{
    const col=+th.dataset.col, asc=!th.classList.contains('asc');
    table.querySelectorAll('th').forEach(h=>h.classList.remove('asc','desc'));
    th.classList.add(asc?'asc':'desc');
    const key=r=>{const c=r.cells[col];return c.dataset.v!==undefined?parseFloat(c.dataset.v):c.textContent;};
    const rows=[...body.rows].sort((a,b)=>{const x=key(a),y=key(b);
      const d=(typeof x==='number'&&typeof y==='number')?x-y:String(x).localeCompare(String(y));return asc?d:-d;});
    rows.forEach(r=>body.appendChild(r));
  }));
  body.addEventListener('click',e=>{const r=e.target.closest('tr');if(r&&!e.target.closest('a'))location.hash=r.dataset.href;});
  const f=document.getElementById('filter');
  f.addEventListener('input',()=>{const q=f.value.toLowerCase();
    [...body.rows].forEach(r=>{r.style.display=r.textContent.toLowerCase().includes(q)?'':'none';});});
}
document.querySelectorAll('.clip').forEach(el=>{
  if(el.scrollHeight>el.clientHeight+4){el.title='click to expand';el.style.cursor='zoom-in';
    el.addEventListener('click',()=>{if(!getSelection().toString())el.classList.toggle('open');});}});
function openTarget(){const el=location.hash&&document.getElementById(location.hash.slice(1));
  if(el&&el.tagName==='DETAILS')el.open=true;}
addEventListener('hashchange',openTarget);openTarget();
const cards=[...document.querySelectorAll('.traj')];
document.addEventListener('keydown',e=>{
  if(e.target.tagName==='INPUT'||e.metaKey||e.ctrlKey||e.altKey||(e.key!=='j'&&e.key!=='k'))return;
  const y=window.scrollY+10;let cur=-1;cards.forEach((c,i)=>{if(c.offsetTop<=y)cur=i;});
  const next=e.key==='j'?cards[cur+1]:(cur>=0&&cards[cur].offsetTop<y-30?cards[cur]:cards[cur-1]);
  if(next)next.scrollIntoView();
});
})();
"""
