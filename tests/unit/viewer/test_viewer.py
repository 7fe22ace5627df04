"""The HTML viewer: content, token roles, escaping of untrusted text, and the file entry point."""

from __future__ import annotations

import html
import json
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from agentgym import export
from agentgym.errors import ConfigError
from agentgym.types import BreakReason, ErrorInfo, Segment, Step, StopReason, Trajectory
from agentgym.viewer import render_html, write_view

SCRIPT = "<script>alert('pwned')</script>"


@pytest.fixture(scope="module")
def tok() -> Any:
    from agentgym.models.tiny import train_tokenizer

    return train_tokenizer()


def build_segment(tok: Any, pieces: Sequence[tuple[str, str, int]], *, logprob: float = -0.25,
                  break_reason: BreakReason = BreakReason.START) -> Segment:
    """A segment from ``(role, text, turn)`` pieces; role is ``tpl``, ``obs`` or ``act``."""
    ids: list[int] = []
    act: list[int] = []
    obs: list[int] = []
    lps: list[float] = []
    turns: list[int] = []
    for role, text, turn in pieces:
        piece = tok.encode(text, add_special_tokens=False)
        ids += piece
        act += [int(role == "act")] * len(piece)
        obs += [int(role == "obs")] * len(piece)
        lps += [logprob if role == "act" else 0.0] * len(piece)
        turns += [turn] * len(piece)
    return Segment(input_ids=tuple(ids), action_mask=tuple(act), obs_mask=tuple(obs), logprobs=tuple(lps),
                   turn_index=tuple(turns), policy_version=tuple([0] * len(ids)), break_reason=break_reason,
                   call_ids=("c0", "c1"))


def make_trajectory(tok: Any, i: int, *, observation: str = "file.txt\nnotes.md", reward: float = 1.0,
                    stop: StopReason = StopReason.COMPLETED, error: ErrorInfo | None = None) -> Trajectory:
    """Two steps in one segment, shaped like the tiny model's chat template renders them."""
    action0 = '<tool_call>\n{"name": "bash", "arguments": {"command": "ls"}}\n</tool_call>'
    action1 = "Done: héllo wörld ✓"
    pieces = [
        ("tpl", "<|im_start|>system\nYou are a helpful agent.<|im_end|>\n<|im_start|>user\n", -1),
        ("obs", "List the files.", -1),
        ("tpl", "<|im_end|>\n<|im_start|>assistant\n", -1),
        ("act", action0 + "<|im_end|>", 0),
        ("tpl", "\n<|im_start|>user\n<tool_response>\n", 1),
        ("obs", observation, 1),
        ("tpl", "\n</tool_response><|im_end|>\n<|im_start|>assistant\n", 1),
        ("act", action1 + "<|im_end|>", 1),
    ]
    seg = build_segment(tok, pieces)
    steps = (
        Step(index=0, call_id="c0", segment_index=0, action_span=(0, 0), observation="List the files.",
             action="bash({'command': 'ls'})", anchor="List the files.", reward=0.0),
        Step(index=1, call_id="c1", segment_index=0, action_span=(0, 0), observation=observation,
             action=action1, anchor=" ".join(observation.split()), reward=reward, valid=i % 2 == 0),
    )
    return Trajectory(id=f"traj-{i}", task_id=f"terminal/task-{i}", session_id=f"s{i}", segments=(seg,),
                      steps=steps, reward=reward, stop_reason=stop, harness="agentgym/react-v0",
                      env="terminal/basic-v0", sample_index=i, error=error,
                      sampled_tokens=seg.num_action_tokens + i, started_at=10.0, ended_at=12.5)


def main_part(page: str) -> str:
    """The page below the header (the legend there shows one token of each role)."""
    return page.split("<main>", 1)[1]


def token_text(page: str) -> list[str]:
    """Each segment's token view turned back into text (visible whitespace undone)."""
    out = []
    for block in re.findall(r'<div class="toks">(.*?)</div></details>', page, flags=re.S):
        block = re.sub(r'<span class="turn">[^<]*</span>', "", block)
        block = re.sub(r'<span class="ws">(·+)</span>', lambda m: " " * len(m.group(1)), block)
        block = re.sub(r'<span class="ws">[↵→]</span>', "", block)
        out.append(html.unescape(re.sub(r"<[^>]+>", "", block)))
    return out


def test_page_shows_every_trajectory_with_reward_stop_reason_and_observation(tok: Any) -> None:
    trajs = [make_trajectory(tok, 0, reward=0.75),
             make_trajectory(tok, 1, reward=0.0, stop=StopReason.TIMEOUT, observation="total 42\n-rw-r--r-- a.py"),
             make_trajectory(tok, 2, stop=StopReason.HARNESS_ERROR,
                             error=ErrorInfo(type="HarnessError", boundary="harness", message="exit status 137"))]
    page = render_html(trajs, tokenizer=tok, title="demo run")
    assert page.startswith("<!DOCTYPE html>") and "<title>demo run</title>" in page
    for i, t in enumerate(trajs):
        assert page.count(f">{t.id}<") == 2  # summary row and card heading
        assert f'href="#t{i}"' in page and f'id="t{i}"' in page
        assert t.task_id in page
        assert f">{t.stop_reason.value}<" in page
    assert 'data-v="0.75"' in page and "reward 0.75" in page
    assert "total 42\n-rw-r--r-- a.py" in page  # the step's observation, verbatim
    assert '<div class="error"><b>HarnessError</b>' in page and "exit status 137" in page
    assert page.count('<span class="badge bad">invalid</span>') == 1
    assert "break: start" in page


def test_token_spans_are_classed_by_role(tok: Any) -> None:
    trajs = [make_trajectory(tok, 0), make_trajectory(tok, 1, observation="one\ntwo\tthree")]
    body = main_part(render_html(trajs, tokenizer=tok))
    segs = [s for t in trajs for s in t.segments]
    n_act = sum(sum(s.action_mask) for s in segs)
    n_obs = sum(sum(s.obs_mask) for s in segs)
    n_all = sum(len(s) for s in segs)
    assert n_act and n_obs and n_all > n_act + n_obs
    assert body.count('<span class="tk act') == n_act
    assert body.count('<span class="tk obs"') == n_obs
    assert body.count('<span class="tk tpl"') == n_all - n_act - n_obs
    # logprob -0.25 -> p 0.779, the fourth of five intensity bins
    assert body.count('<span class="tk act p3" title="id ') == n_act
    assert "logprob -0.2500 · p 0.779" in body


def test_tokens_decode_back_to_the_exact_text(tok: Any) -> None:
    t = make_trajectory(tok, 0, observation="a\tb  c\n\nünïcødé ✓ 日本")
    page = render_html([t], tokenizer=tok)
    assert token_text(page) == [tok.decode(list(t.segments[0].input_ids), skip_special_tokens=False)]
    assert '<span class="ws">↵</span>\n' in page and '<span class="ws">→</span>\t' in page


def test_without_a_tokenizer_token_ids_are_shown(tok: Any) -> None:
    t = make_trajectory(tok, 0)
    page = render_html([t])
    seg = t.segments[0]
    assert token_text(page) == ["".join(str(i) for i in seg.input_ids)]
    assert "no tokenizer: showing token ids" in page
    assert "List the files." in page  # step text needs no tokenizer


class SentencePieceLike:
    """Llama-2 style pieces: ``▁`` for a space, ``<0xE2>``-style byte fallback for rare bytes."""

    pieces = ("<s>", "▁hello", "▁wor", "ld", "<0x0A>", "<0xE2>", "<0x9C>", "<0x93>", "<")

    class backend_tokenizer:  # the attribute a fast tokenizer has
        @staticmethod
        def to_str() -> str:
            return json.dumps({"decoder": {"type": "Sequence", "decoders": [{"type": "Replace"},
                                                                             {"type": "ByteFallback"}]}})

    def __len__(self) -> int:
        return len(self.pieces)

    def convert_ids_to_tokens(self, i: int) -> str:
        return self.pieces[i]


def observation_only(ids: Sequence[int]) -> Trajectory:
    n = len(ids)
    seg = Segment(input_ids=tuple(ids), action_mask=(0,) * n, obs_mask=(1,) * n, logprobs=(0.0,) * n,
                  turn_index=(0,) * n, policy_version=(0,) * n)
    return Trajectory(id="obs", task_id="x", session_id="s", segments=(seg,), steps=(), reward=0.0,
                      stop_reason=StopReason.COMPLETED)


def test_sentencepiece_pieces_and_unknown_ids(tok: Any) -> None:
    t = observation_only([1, 2, 3, 4, 5, 6, 7, 8, 99])
    assert token_text(render_html([t], tokenizer=SentencePieceLike())) == [" hello world\n✓<⟨99⟩"]
    t = observation_only([*tok.encode("ok", add_special_tokens=False), 10**6])
    assert token_text(render_html([t], tokenizer=tok)) == ["ok⟨1000000⟩"]  # not in this vocabulary


def test_untrusted_text_is_escaped_everywhere(tok: Any) -> None:
    t = make_trajectory(tok, 0, observation=SCRIPT, error=ErrorInfo(type="<b>X</b>", boundary="harness",
                                                                    message=SCRIPT))
    t = Trajectory(**{**t.__dict__, "id": SCRIPT, "task_id": SCRIPT, "metadata": {"note": SCRIPT}})
    page = render_html([t], tokenizer=tok, title=SCRIPT)
    assert page.count("<script") == 1  # the viewer's own
    assert "<b>X</b>" not in page
    assert html.escape(SCRIPT) in page
    assert SCRIPT in token_text(page)[0]  # tokens of the observation, decoded then escaped


def test_long_segments_are_capped_with_a_note(tok: Any) -> None:
    t = make_trajectory(tok, 0, observation="word " * 400)
    n = len(t.segments[0])
    page = main_part(render_html([t], tokenizer=tok, max_tokens_per_segment=100))
    assert n > 300
    assert page.count('<span class="tk ') == 100
    assert f"{n - 100:,} tokens not shown (showing the first 25 and last 75 of {n:,}" in page
    with pytest.raises(ConfigError):
        render_html([t], max_tokens_per_segment=0)


def test_breaks_steps_and_empty_trajectories(tok: Any) -> None:
    t = make_trajectory(tok, 0)
    second = build_segment(tok, [("tpl", "<|im_start|>user\n", 2), ("act", "ok", 2)],
                           break_reason=BreakReason.HISTORY_EDITED, logprob=-5.0)
    step = Step(index=2, call_id="c2", segment_index=1, action_span=(3, 4), observation="", action="ok")
    t = Trajectory(**{**t.__dict__, "segments": (*t.segments, second), "steps": (*t.steps, step)})
    empty = Trajectory(id="empty", task_id="x", session_id="s", segments=(), steps=(), reward=0.0,
                       stop_reason=StopReason.RUNTIME_ERROR,
                       error=ErrorInfo(type="RuntimeError_", boundary="runtime", message="no sandbox"))
    page = render_html([t, empty], tokenizer=tok)
    assert page.count("break: history_edited") == 2  # timeline divider and token-view divider
    assert '<a href="#t0-s1">segment 1 · break: history_edited</a>' in page
    assert 'class="tk act p0 low"' in page  # p = e^-5 < 0.1
    assert "no steps recorded" in page and "no sandbox" in page


def test_write_view_of_a_run_directory(tmp_path: Path, tok: Any, caplog: pytest.LogCaptureFixture) -> None:
    trajs = [make_trajectory(tok, i) for i in range(3)]
    run = tmp_path / "run"
    export.write_jsonl(trajs, run / "episodes.jsonl")
    with open(run / "episodes.jsonl", "a", encoding="utf-8") as f:
        f.write('{"schema_version": 1, "id": "torn')  # a crash mid-write
    tok_dir = tmp_path / "tok"
    tok.save_pretrained(tok_dir)
    (run / "run.json").write_text(json.dumps({"model_path": str(tok_dir)}))
    with caplog.at_level(logging.WARNING):
        out = write_view(run)
    assert out == run / "view.html"
    page = out.read_text(encoding="utf-8")
    assert "skipping an unreadable record" in caplog.text
    for t in trajs:
        assert f">{t.id}<" in page
    assert token_text(page)[0] == tok.decode(list(trajs[0].segments[0].input_ids), skip_special_tokens=False)

    (run / "run.json").write_text(json.dumps({"model_path": str(tmp_path / "gone")}))
    page = write_view(run, tmp_path / "ids.html").read_text(encoding="utf-8")
    assert "no tokenizer: showing token ids" in page  # run.json is a hint, not a requirement


def test_write_view_of_dataset_files(tmp_path: Path, tok: Any) -> None:
    trajs = [make_trajectory(tok, i) for i in range(2)]
    tok_dir = tmp_path / "tok"
    tok.save_pretrained(tok_dir)
    for name in ("data.jsonl", "data.parquet"):
        src = export.write(trajs, tmp_path / name)
        out = write_view(src, tokenizer_path=str(tok_dir))
        assert out == src.with_suffix(".html")
        page = out.read_text(encoding="utf-8")
        assert ">traj-1<" in page and "List the files." in token_text(page)[0]


def test_write_view_errors_say_what_to_pass(tmp_path: Path, tok: Any) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        write_view(tmp_path / "nope")
    with pytest.raises(ConfigError, match=r"episodes\.jsonl"):
        write_view(tmp_path)
    export.write_jsonl([make_trajectory(tok, 0)], tmp_path / "episodes.jsonl")
    with pytest.raises(ConfigError, match="could not load a tokenizer"):
        write_view(tmp_path, tokenizer_path=str(tmp_path / "no-such-model"))
