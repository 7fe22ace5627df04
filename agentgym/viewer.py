"""A self-contained HTML viewer for trajectories: one static file, no network, no server.

The page has a sortable, filterable summary table, then one card per trajectory: its reward,
stop reason and error up front; its steps as a timeline (observation, action, anchor, validity,
step reward), and per segment a token view where every token is coloured by its role (sampled
action, environment observation, template/prompt) with its id and logprob in a tooltip.

Built to open big runs fast: a card's steps and tokens are not HTML in the page but a JSON
block per trajectory (``<script type="application/json">``, never executed), parsed and drawn
only when the card is opened (a click, its ``#t<i>`` link, the keys ``j``/``k``); token ids
are decoded in the browser from one table of the bytes of each token id used. A
1,000-trajectory run opens in well under 2 s (``tests/integration/test_viewer_browser.py``).

>>> write_view(Path("runs/demo"))                                   # doctest: +SKIP
PosixPath('runs/demo/view.html')

Everything taken from a trajectory is untrusted (harness output): the page's few server-side
strings are HTML-escaped, and the script puts trajectory text into the page only as text
(``textContent``), so an observation holding ``<script>`` shows as text and never runs. The
page's Content-Security-Policy allows no script but its own (by hash).
"""

from __future__ import annotations

import base64
import functools
import gzip
import hashlib
import html
import json
import logging
import os
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agentgym import export
from agentgym.errors import ConfigError
from agentgym.types import Segment, StopReason, Trajectory

__all__ = ["render_html", "unpack", "write_view"]

log = logging.getLogger(__name__)

MAX_TOKENS_PER_SEGMENT = 4000
"""Tokens shown per segment by default; longer segments show their head and tail."""
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


# -- formatting helpers ------------------------------------------------------------------------
def _e(x: object) -> str:
    return html.escape(str(x), quote=True)


def _num(x: float) -> str:
    return f"{x:.4g}"


def _pct(x: float) -> str:
    return "100%" if x >= 1.0 else f"{x:.1%}"


def _clip(text: str, limit: int = MAX_TEXT_CHARS) -> str | list[Any]:
    """``text``, or past ``limit`` characters ``[head, characters left out, tail]``."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return [text[:half], len(text) - 2 * half, text[-half:]]


def _clip_html(text: str, limit: int = MAX_TEXT_CHARS) -> str:
    if len(text) <= limit:
        return _e(text)
    half = limit // 2
    return (f"{_e(text[:half])}<span class=\"gap\">[… {len(text) - 2 * half:,} characters not shown …]</span>"
            f"{_e(text[-half:])}")


def _stop_class(stop: StopReason) -> str:
    return "ok" if stop in _OK_STOPS else "warn" if stop in _SOFT_STOPS else "bad"


def _reward_class(r: float) -> str:
    return "pos" if r > 0 else "neg" if r < 0 else "zero"


def _runs(values: Any, start: int, end: int) -> list[list[int]]:
    """Run-length ``[[position, value], ...]`` of ``values[start:end]`` (positions from 0)."""
    import numpy as np

    arr = np.asarray(values[start:end], dtype=np.int64)
    if not len(arr):
        return []
    starts = np.concatenate(([0], np.flatnonzero(np.diff(arr)) + 1))
    return [[int(i), int(arr[i])] for i in starts]


def _packed(data: Any) -> str:
    """``data`` as base64 of gzipped JSON: a third of the size of the JSON (what a browser reads
    before the page loads), unpacked by the browser's own ``DecompressionStream`` when a card is
    opened. Base64 has no ``<``, so it cannot end the ``<script>`` block holding it."""
    raw = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
    return base64.b64encode(gzip.compress(raw, compresslevel=6, mtime=0)).decode("ascii")


def unpack(block: str) -> Any:
    """The data of one packed block (for tests and tools; the browser does the same)."""
    return json.loads(gzip.decompress(base64.b64decode(block)))


def _json_for_html(data: Any) -> str:
    """JSON safe inside ``<script type="application/json">``: no ``<`` at all, so neither
    ``</script>`` nor ``<!--`` in a string can end or confuse the block."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c")


# -- data for the browser ----------------------------------------------------------------------
_ROLE = bytes.maketrans(bytes([0, 1, 2]), b"toa")


def _segment_data(seg: Segment, cap: int, used: set[int]) -> dict[str, Any]:
    import numpy as np

    n = len(seg)
    if n <= cap:
        parts = [(0, n)]
    else:  # the head holds the system prompt, the tail the latest turns: keep more of the tail
        head = cap // 4
        parts = [(0, head), (n - (cap - head), n)]
    act = np.asarray(seg.action_mask, dtype=np.uint8) != 0
    obs = (np.asarray(seg.obs_mask, dtype=np.uint8) != 0) & ~act
    role = (act * 2 + obs).astype(np.uint8)  # 0 template, 1 observation, 2 action
    lps = np.asarray(seg.logprobs, dtype=np.float64)
    chunks = []
    for start, end in parts:
        ids = list(seg.input_ids[start:end])
        used.update(ids)
        chunks.append({
            "at": start, "ids": ids, "t0": seg.turn_index[start - 1] if start > 0 else None,
            "r": role[start:end].tobytes().translate(_ROLE).decode("ascii"),
            "lp": np.round(lps[start:end][act[start:end]], 4).tolist(),
            "turn": _runs(seg.turn_index, start, end), "pv": _runs(seg.policy_version, start, end),
        })
    return {"n": n, "act": int(act.sum()), "obs": int(obs.sum()), "brk": seg.break_reason.value,
            "calls": list(seg.call_ids), "agent": seg.agent_id, "chunks": chunks}


def _trajectory_data(t: Trajectory, cap: int, used: set[int]) -> dict[str, Any]:
    steps = [[s.index, s.call_id, s.segment_index, s.action_span[0], s.action_span[1], int(s.valid), s.reward,
              s.agent_id, _clip(s.observation), _clip(s.action), _clip(s.anchor, 300)] for s in t.steps]
    meta = json.dumps(dict(t.metadata), indent=2, sort_keys=True, default=str) if t.metadata else ""
    return {"steps": steps, "segs": [_segment_data(s, cap, used) for s in t.segments], "meta": _clip(meta)}


def _vocabulary(texts: _TokenText | None, used: set[int]) -> dict[str, str] | None:
    """Each used id's exact bytes, as a string of code points 0-255 (the browser decodes them
    as UTF-8, streaming, so a character split across tokens shows on the token completing it)."""
    if texts is None:
        return None
    return {str(i): texts.bytes_of(i).decode("latin-1") for i in sorted(used)}


# -- the page ----------------------------------------------------------------------------------
def _card_html(i: int, t: Trajectory) -> str:
    facts = [f"task <b>{_e(t.task_id)}</b>", f"sample {t.sample_index}"]
    facts += [f"{label} {_e(v)}" for label, v in (("harness", t.harness), ("env", t.env)) if v]
    if t.agent_id != "main":
        facts.append(f"agent {_e(t.agent_id)}")
    if t.ended_at > t.started_at > 0:
        facts.append(f"{t.ended_at - t.started_at:.1f} s")
    image_s = (t.metadata.get("timings") or {}).get("image_s") if isinstance(t.metadata, dict) else None
    if image_s:
        facts.append(f"(+ {float(image_s):.1f} s image)")
    facts.append(f"{t.sampled_tokens:,} sampled / {t.trained_tokens:,} trained tokens "
                 f"({_pct(t.delivered_fraction)} delivered)")
    err = ""
    if t.error is not None:
        err = (f'<div class="error"><b>{_e(t.error.type)}</b> at the {_e(t.error.boundary)} boundary'
               f'<pre class="clip">{_clip_html(t.error.message)}</pre></div>')
    return (
        f'<section class="traj" id="t{i}" data-i="{i}"><div class="traj-head">'
        f'<h2><span class="idx">#{i}</span> <span class="tid">{_e(t.id)}</span></h2>'
        f'<span class="badge reward {_reward_class(t.reward)}">reward {_num(t.reward)}</span>'
        f'<span class="badge {_stop_class(t.stop_reason)}">{_e(t.stop_reason.value)}</span>'
        f'<span class="badge plain">{len(t.steps)} steps</span>'
        f'<button class="open" type="button" aria-expanded="false">show steps and tokens</button>'
        f'<a class="top" href="#summary">↑ summary</a></div>'
        f'<div class="facts">{" · ".join(facts)}</div>{err}<div class="body" hidden></div></section>')


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
        f'<div class="tablewrap"><table id="summary-table"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}'
        f'</tbody></table></div></section>')


@functools.lru_cache(maxsize=1)
def _script_hash() -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(_JS.encode()).digest()).decode()


def render_html(trajectories: Sequence[Trajectory], *, tokenizer: Any = None, title: str = "",
                max_tokens_per_segment: int = MAX_TOKENS_PER_SEGMENT) -> str:
    """One self-contained HTML page (inline CSS and JS, nothing fetched) for ``trajectories``.

    Args:
        trajectories: what to show, in this order.
        tokenizer: a Hugging Face tokenizer to decode token ids into text; without one the token
            views show ids.
        title: page heading (default ``"agentgym trajectories"``).
        max_tokens_per_segment: tokens shown per segment; a longer segment shows its first
            quarter and last three quarters of this many, with a note about the rest.

    >>> from agentgym.types import Step, StopReason, Trajectory
    >>> step = Step(index=0, call_id="c0", segment_index=0, action_span=(0, 0), observation="<script>x</script>")
    >>> page = render_html([Trajectory(id="t0", task_id="hello", session_id="s0", segments=(), steps=(step,),
    ...                                reward=1.0, stop_reason=StopReason.COMPLETED)])
    >>> page.startswith("<!DOCTYPE html>"), "<script>x" in page
    (True, False)
    >>> import re                                      # a card's data: packed, drawn as text when opened
    >>> unpack(re.search(r'id="d0">([^<]*)<', page).group(1))["steps"][0][8]
    '<script>x</script>'
    """
    if max_tokens_per_segment < 1:
        raise ConfigError(f"max_tokens_per_segment must be at least 1, got {max_tokens_per_segment}")
    texts = _TokenText(tokenizer) if tokenizer is not None else None
    heading = title or "agentgym trajectories"
    used: set[int] = set()
    blocks = [f'<script type="text/plain" id="d{i}">{_packed(_trajectory_data(t, max_tokens_per_segment, used))}'
              '</script>' for i, t in enumerate(trajectories)]
    vocab = _vocabulary(texts, used)
    cards = "".join(_card_html(i, t) for i, t in enumerate(trajectories))
    legend = ('<div class="legend">tokens: <span class="tk act p4">action (sampled)</span> '
              '<span class="tk act p1">less likely</span> <span class="tk act p0 low">p &lt; 0.1</span> '
              '<span class="tk obs">observation</span> <span class="tk tpl">template / prompt</span>'
              f'{"" if texts else " · no tokenizer: showing token ids"} · hover a token for its id and '
              'logprob · click a card (or a row) to open it · keys <kbd>j</kbd>/<kbd>k</kbd>: '
              'next/previous trajectory</div>')
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
        f"style-src 'unsafe-inline'; script-src '{_script_hash()}'\">"
        f"<title>{_e(heading)}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{_e(heading)}</h1>{legend}</header><main>"
        f"{_summary_html(trajectories)}{cards}</main>"
        f'<script type="application/json" id="vocab">{_json_for_html(vocab)}</script>'
        f"{''.join(blocks)}<script>{_JS}</script></body></html>\n")


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
        StorageError: the page cannot be written (one line: the path and why).
    """
    from agentgym.errors import storage_error

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
    page = render_html(trajectories, tokenizer=tokenizer, title=f"agentgym · {src.name}")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(page, encoding="utf-8")
    except OSError as e:
        raise storage_error(e, dest) from None
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
button.open{font:inherit;font-size:12px;padding:2px 10px;border-radius:6px;border:1px solid var(--line);background:var(--code);color:var(--fg);cursor:pointer}
button.open:hover{border-color:rgb(var(--obs))}
.zoom{cursor:zoom-in}
.traj{content-visibility:auto;contain-intrinsic-size:auto 120px}
"""

_JS = r"""
(function(){
'use strict';
const $=id=>document.getElementById(id);
function el(tag,cls,text){const e=document.createElement(tag);if(cls)e.className=cls;
  if(text!==undefined&&text!==null)e.textContent=text;return e;}
function textOf(v){return Array.isArray(v)?v[0]+v[2]:(v||'');}
function clipped(tag,cls,v){const e=el(tag,cls);
  if(Array.isArray(v)){e.append(v[0],el('span','gap','[… '+v[1].toLocaleString()+' characters not shown …]'),v[2]);}
  else e.textContent=v;return e;}
function expander(e){requestAnimationFrame(()=>{if(e.scrollHeight>e.clientHeight+4){e.title='click to expand';
  e.classList.add('zoom');e.addEventListener('click',()=>{if(!getSelection().toString())e.classList.toggle('open');});}});}
function num(x){return String(Number(Number(x).toPrecision(4)));}
function rc(r){return r>0?'pos':r<0?'neg':'zero';}
document.querySelectorAll('.traj .clip').forEach(expander);

// -- tokens: one table of each used id's bytes, decoded as UTF-8 in order (streaming) --
let vocab;const bytes=new Map();const enc=new TextEncoder();
function vocabulary(){if(vocab===undefined)vocab=JSON.parse($('vocab').textContent);return vocab;}
function bytesOf(id){let b=bytes.get(id);if(b)return b;const s=vocab[id];
  if(s===undefined)b=enc.encode('\u27e8'+id+'\u27e9');
  else{b=new Uint8Array(s.length);for(let i=0;i<s.length;i++)b[i]=s.charCodeAt(i);}
  bytes.set(id,b);return b;}
const GLYPH={'\n':'\u21b5','\t':'\u2192','\r':'\u240d'};
function visible(span,text){
  if(text&&/^ +$/.test(text)){span.append(el('span','ws','\u00b7'.repeat(text.length)));return;}
  let last=0;
  for(let i=0;i<text.length;i++){const c=text.charCodeAt(i);
    if(c<32||c===127){if(i>last)span.append(text.slice(last,i));const ch=text[i];
      span.append(el('span','ws',GLYPH[ch]||('\\x'+c.toString(16).padStart(2,'0'))));
      if(ch==='\n'||ch==='\t')span.append(ch);last=i+1;}}
  if(last<text.length)span.append(text.slice(last));}
function renderTokens(box,seg){
  const v=vocabulary();const frag=document.createDocumentFragment();let prev=null;
  for(const ch of seg.chunks){
    if(prev){const head=prev.ids.length,tail=seg.n-ch.at;
      frag.append(el('div','gap more','\u2026 '+(ch.at-head).toLocaleString()+' tokens not shown (showing the first '+
        head.toLocaleString()+' and last '+tail.toLocaleString()+' of '+seg.n.toLocaleString()+
        '; raise max_tokens_per_segment to see more) \u2026'));}
    const dec=v?new TextDecoder('utf-8'):null;
    let turn=ch.t0,ti=0,pi=0,li=0;
    for(let k=0;k<ch.ids.length;k++){
      while(ti+1<ch.turn.length&&ch.turn[ti+1][0]<=k)ti++;
      while(pi+1<ch.pv.length&&ch.pv[pi+1][0]<=k)pi++;
      const tn=ch.turn[ti][1],id=ch.ids[k],sp=el('span');
      if(tn!==turn){turn=tn;frag.append(el('span','turn',tn<0?'prompt':'step '+tn));}
      const role=ch.r.charCodeAt(k);
      if(role===97){const lp=ch.lp[li++],p=Math.exp(Math.min(lp,0));
        sp.className='tk act p'+Math.min(Math.floor(p*5),4)+(p<0.1?' low':'');
        sp.title='id '+id+' \u00b7 logprob '+lp.toFixed(4)+' \u00b7 p '+p.toFixed(3)+' \u00b7 step '+tn+' \u00b7 v'+ch.pv[pi][1];}
      else{sp.className=role===111?'tk obs':'tk tpl';sp.title='id '+id;}
      if(dec)visible(sp,dec.decode(bytesOf(id),{stream:true}));else sp.textContent=String(id);
      frag.append(sp);}
    prev=ch;}
  box.append(frag);}

// -- a card's body, drawn from its JSON block when first opened --
function brk(node){const d=el('div','brk');d.append(node);return d;}
function segmentBlock(i,k,seg){
  const d=el('details','seg');d.id='t'+i+'-s'+k;const sm=el('summary');
  sm.append('tokens \u00b7 segment '+k+' \u00b7 '+seg.n.toLocaleString()+' tokens: ',el('span','k act',seg.act.toLocaleString()+' action'),' ',
    el('span','k obs',seg.obs.toLocaleString()+' observation'),' ',el('span','k tpl',(seg.n-seg.act-seg.obs).toLocaleString()+' template'),
    ' \u00b7 agent '+seg.agent);
  const box=el('div','toks');
  d.append(sm,brk(el('span',null,'break: '+seg.brk)),el('div','calls','calls: '+(seg.calls.join(', ')||'\u2014')),box);
  d.addEventListener('toggle',()=>{if(d.open&&!box.dataset.done){box.dataset.done='1';renderTokens(box,seg);}});
  return d;}
function stepBlock(s){
  const d=el('div','step'+(s[5]?'':' invalid')),h=el('div','step-head');
  h.append(el('b',null,'step '+s[0]),' ',el('span','badge '+(s[5]?'ok':'bad'),s[5]?'valid':'invalid'),' ',
    el('span','sr '+rc(s[6]),'reward '+num(s[6])),
    el('span','meta','call '+s[1]+' \u00b7 segment '+s[2]+' \u00b7 action tokens '+s[3]+'\u2013'+s[4]+(s[7]==='main'?'':' \u00b7 agent '+s[7])));
  d.append(h);
  if(textOf(s[8])){d.append(el('div','role','observation'));const p=clipped('pre','obs clip',s[8]);d.append(p);expander(p);}
  else d.append(el('div','role muted','no new observation'));
  if(textOf(s[10])){const a=clipped('div','anchor',s[10]);a.title='anchor (GiGPO state key)';a.prepend('anchor: ');d.append(a);}
  d.append(el('div','role','action'));
  if(textOf(s[9])){const p=clipped('pre','act clip',s[9]);d.append(p);expander(p);}
  else d.append(el('div','muted','(empty action)'));
  return d;}
async function unpack(i){
  const s=atob($('d'+i).textContent),bin=new Uint8Array(s.length);for(let k=0;k<s.length;k++)bin[k]=s.charCodeAt(k);
  const text=await new Response(new Blob([bin]).stream().pipeThrough(new DecompressionStream('gzip'))).text();
  return JSON.parse(text);}
const drawn=new Map();
function body(card){let p=drawn.get(card);if(!p){p=draw(card);drawn.set(card,p);}return p;}
async function draw(card){
  const b=card.querySelector('.body'),i=+card.dataset.i,data=await unpack(i),tl=el('div','timeline');let shown=-1;
  for(const s of data.steps){
    if(s[2]!==shown&&s[2]>=0&&s[2]<data.segs.length){const a=el('a',null,'segment '+s[2]+' \u00b7 break: '+data.segs[s[2]].brk);
      a.href='#t'+i+'-s'+s[2];tl.append(brk(a));shown=s[2];}
    tl.append(stepBlock(s));}
  if(!data.steps.length)tl.append(el('div','muted','no steps recorded'));
  const segs=el('div','segs');data.segs.forEach((sg,k)=>segs.append(segmentBlock(i,k,sg)));
  if(!data.segs.length)segs.append(el('div','muted','no segments'));
  b.append(tl,segs);
  if(textOf(data.meta)){const m=el('details','metadata');m.append(el('summary',null,'metadata'),clipped('pre',null,data.meta));b.append(m);}
  return b;}
async function show(card,open){const b=await body(card);b.hidden=!open;const btn=card.querySelector('button.open');
  btn.textContent=open?'hide steps and tokens':'show steps and tokens';btn.setAttribute('aria-expanded',String(open));}
document.addEventListener('click',e=>{const btn=e.target.closest('button.open');if(!btn)return;
  const card=btn.closest('.traj');show(card,card.querySelector('.body').hidden);});
async function openTarget(){const h=location.hash.slice(1),m=/^t(\d+)(?:-s(\d+))?$/.exec(h);if(!m)return;
  const card=$('t'+m[1]);if(!card)return;await show(card,true);let target=card;
  if(m[2]!==undefined){const d=$(h);if(d){d.open=true;target=d;}}
  target.scrollIntoView();}
addEventListener('hashchange',openTarget);openTarget();

// -- the summary table: sort, filter, jump --
const table=$('summary-table');
if(table){const tb=table.tBodies[0];
  table.querySelectorAll('th').forEach(th=>th.addEventListener('click',()=>{
    const col=+th.dataset.col,asc=!th.classList.contains('asc');
    table.querySelectorAll('th').forEach(x=>x.classList.remove('asc','desc'));th.classList.add(asc?'asc':'desc');
    const key=r=>{const c=r.cells[col];return c.dataset.v!==undefined?parseFloat(c.dataset.v):c.textContent;};
    const rows=[...tb.rows].sort((a,b)=>{const x=key(a),y=key(b);
      const d=(typeof x==='number'&&typeof y==='number')?x-y:String(x).localeCompare(String(y));return asc?d:-d;});
    tb.append(...rows);}));
  tb.addEventListener('click',e=>{const r=e.target.closest('tr');if(!r||e.target.closest('a'))return;
    if(location.hash===r.dataset.href)openTarget();else location.hash=r.dataset.href;});
  const f=$('filter');f.addEventListener('input',()=>{const q=f.value.toLowerCase();
    for(const r of tb.rows)r.style.display=r.textContent.toLowerCase().includes(q)?'':'none';});}
document.addEventListener('keydown',e=>{
  if(e.target.tagName==='INPUT'||e.metaKey||e.ctrlKey||e.altKey||(e.key!=='j'&&e.key!=='k'))return;
  const cards=document.querySelectorAll('.traj'),y=window.scrollY+10;let cur=-1;
  for(let i=0;i<cards.length;i++){if(cards[i].offsetTop<=y)cur=i;else break;}
  const next=e.key==='j'?cards[cur+1]:(cur>=0&&cards[cur].offsetTop<y-30?cards[cur]:cards[cur-1]);
  if(next)next.scrollIntoView();});
window.agentgymReady=performance.now();
})();
"""
