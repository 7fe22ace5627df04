"""The HTML viewer: content, token roles, escaping of untrusted text, and the file entry point."""

from __future__ import annotations

import html
import itertools
import json
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from agentgym import export
from agentgym.errors import ConfigError, StorageError
from agentgym.types import BreakReason, ErrorInfo, Segment, Step, StopReason, Trajectory
from agentgym.viewer import render_html, unpack, write_view

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


def cards(page: str) -> list[dict[str, Any]]:
    """Each card's data, as the browser unpacks it when the card is opened."""
    return [unpack(b) for b in re.findall(r'<script type="text/plain" id="d\d+">([^<]*)</script>', page)]


def vocabulary(page: str) -> dict[str, str] | None:
    block = re.search(r'<script type="application/json" id="vocab">(.*?)</script>', page, flags=re.S)
    assert block is not None
    vocab: dict[str, str] | None = json.loads(block.group(1))
    return vocab


def token_text(page: str) -> list[str]:
    """Each segment's shown tokens turned back into text, as the page's script decodes them (each
    id's bytes, UTF-8 in order; an id without a tokenizer)."""
    vocab = vocabulary(page)
    out = []
    for card in cards(page):
        for seg in card["segs"]:
            if vocab is None:
                out.append("".join(str(i) for ch in seg["chunks"] for i in ch["ids"]))
                continue
            data = b"".join(vocab[str(i)].encode("latin-1") if str(i) in vocab else f"⟨{i}⟩".encode()
                            for ch in seg["chunks"] for i in ch["ids"])
            out.append(data.decode("utf-8", "replace"))
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
    data = cards(page)
    assert data[1]["steps"][1][8] == "total 42\n-rw-r--r-- a.py"  # the step's observation, verbatim
    assert '<div class="error"><b>HarnessError</b>' in page and "exit status 137" in page  # up front
    assert [s[5] for c in data for s in c["steps"]].count(0) == 1  # one invalid step
    assert {seg["brk"] for c in data for seg in c["segs"]} == {"start"}


def test_token_roles_and_logprobs_are_in_the_data(tok: Any) -> None:
    trajs = [make_trajectory(tok, 0), make_trajectory(tok, 1, observation="one\ntwo\tthree")]
    data = cards(render_html(trajs, tokenizer=tok))
    for t, card in zip(trajs, data, strict=True):
        seg, shown = t.segments[0], card["segs"][0]
        roles = "".join(ch["r"] for ch in shown["chunks"])
        n_act, n_obs = sum(seg.action_mask), sum(seg.obs_mask)
        assert n_act and n_obs and len(seg) > n_act + n_obs
        assert (roles.count("a"), roles.count("o"), roles.count("t")) == (n_act, n_obs, len(seg) - n_act - n_obs)
        assert (shown["act"], shown["obs"], shown["n"]) == (n_act, n_obs, len(seg))
        assert [lp for ch in shown["chunks"] for lp in ch["lp"]] == [-0.25] * n_act
        assert roles == "".join("a" if a else "o" if o else "t" for a, o in zip(seg.action_mask, seg.obs_mask,
                                                                                   strict=True))
        runs = shown["chunks"][0]["turn"] + [[len(seg), None]]
        assert [v for (a, v), (b, _) in itertools.pairwise(runs) for _ in range(a, b)] == list(seg.turn_index)


def test_tokens_decode_back_to_the_exact_text(tok: Any) -> None:
    t = make_trajectory(tok, 0, observation="a\tb  c\n\nünïcødé ✓ 日本")
    page = render_html([t], tokenizer=tok)
    assert token_text(page) == [tok.decode(list(t.segments[0].input_ids), skip_special_tokens=False)]
    assert set(vocabulary(page) or {}) == {str(i) for i in t.segments[0].input_ids}  # only the ids used


def test_without_a_tokenizer_token_ids_are_shown(tok: Any) -> None:
    t = make_trajectory(tok, 0)
    page = render_html([t])
    seg = t.segments[0]
    assert vocabulary(page) is None
    assert token_text(page) == ["".join(str(i) for i in seg.input_ids)]
    assert "no tokenizer: showing token ids" in page
    assert cards(page)[0]["steps"][0][8] == "List the files."  # step text needs no tokenizer


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


def test_untrusted_text_never_becomes_markup(tok: Any) -> None:
    t = make_trajectory(tok, 0, observation=SCRIPT, error=ErrorInfo(type="<b>X</b>", boundary="harness",
                                                                    message=SCRIPT))
    t = Trajectory(**{**t.__dict__, "id": SCRIPT, "task_id": SCRIPT, "metadata": {"note": SCRIPT}})
    page = render_html([t], tokenizer=tok, title=SCRIPT)
    tags = re.findall(r"<script[^>]*>", page)
    assert tags == ["<script type=\"application/json\" id=\"vocab\">", "<script type=\"text/plain\" id=\"d0\">",
                    "<script>"]  # the data blocks (never run) and the viewer's own script
    assert "<b>X</b>" not in page and "alert('pwned')" not in page.replace(html.escape(SCRIPT), "")
    assert html.escape(SCRIPT) in page  # head strings escaped
    data = cards(page)[0]
    assert data["steps"][1][8] == SCRIPT and SCRIPT in data["meta"]  # drawn as text by the browser
    assert SCRIPT in token_text(page)[0]
    csp = re.search(r"script-src ([^;\"]+)", page)
    assert csp is not None and csp.group(1).startswith("'sha256-") and "unsafe-inline" not in csp.group(1)


def test_the_policy_allows_exactly_the_viewer_s_script(tok: Any) -> None:
    import base64
    import hashlib

    page = render_html([make_trajectory(tok, 0)], tokenizer=tok)
    script = re.findall(r"<script>(.*?)</script>", page, flags=re.S)
    assert len(script) == 1
    digest = base64.b64encode(hashlib.sha256(script[0].encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in page


def test_long_segments_are_capped_with_a_note(tok: Any) -> None:
    t = make_trajectory(tok, 0, observation="word " * 400)
    n = len(t.segments[0])
    seg = cards(render_html([t], tokenizer=tok, max_tokens_per_segment=100))[0]["segs"][0]
    assert n > 300
    head, tail = seg["chunks"]
    assert (head["at"], len(head["ids"]), tail["at"], len(tail["ids"]), seg["n"]) == (0, 25, n - 75, 75, n)
    assert tail["ids"] == list(t.segments[0].input_ids[-75:])
    assert tail["t0"] == t.segments[0].turn_index[n - 76]
    with pytest.raises(ConfigError):
        render_html([t], max_tokens_per_segment=0)


def test_long_texts_keep_head_and_tail(tok: Any) -> None:
    t = make_trajectory(tok, 0, observation="x" * 30000 + "END")
    obs = cards(render_html([t], tokenizer=tok))[0]["steps"][1][8]
    assert obs[0] == "x" * 10000 and obs[1] == 30003 - 20000 and obs[2].endswith("END")


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
    first, nothing = cards(page)
    assert [s["brk"] for s in first["segs"]] == ["start", "history_edited"]
    assert [s[2] for s in first["steps"]] == [0, 0, 1]  # the timeline's divider before step 2
    assert first["segs"][1]["chunks"][0]["lp"][0] == -5.0  # p = e^-5 < 0.1: the page underlines it
    assert nothing == {"steps": [], "segs": [], "meta": ""} and "no sandbox" in page


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
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    if os.geteuid() != 0:  # root writes anywhere; the rollout tests use a read-only mount
        with pytest.raises(StorageError, match=r"cannot write .*view\.html: Permission denied"):
            write_view(tmp_path, ro / "view.html")
