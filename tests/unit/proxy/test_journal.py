"""The call journal: written ahead of every reply, one delta per call (so it grows linearly with a
session), read back as whole calls with exact prompts, tolerant of a crash mid-line, and still
able to read journals of the old whole-call format."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from agentgym.engines.base import TokenChunk
from agentgym.engines.scripted import ScriptedEngine
from agentgym.proxy.calllog import CallLog, read_calls
from agentgym.rollout.resume import count_calls
from agentgym.types import SamplingParams

from .conftest import BASH_TOOL, post, tool_reply
from .test_splice import SYSTEM, TASK, assistant_echo, tool_result


def observation(turn: int, chars: int = 1500) -> str:
    line = f"-rw-r--r-- 1 root root {turn * 37 % 9000:5d} Nov 22 05:{turn % 60:02d} file_{turn}.txt\n"
    return (line * (chars // len(line) + 1))[:chars]


def run_session(h: Any, sid: str, turns: int, stream: bool = False) -> None:
    messages = [SYSTEM, TASK]
    for t in range(turns):
        r = h.run(post(h.proxy.base_url(sid) + "/chat/completions",
                       json={"model": "m", "messages": messages, "tools": [BASH_TOOL], "stream": stream}))
        assert r.status_code == 200, r.text
        if stream:
            msg = {"role": "assistant", "content": None, "tool_calls": [
                {"id": "x", "type": "function", "function": {"name": "bash", "arguments": '{"command": "ls"}'}}]}
        else:
            msg = assistant_echo(r)
        messages = [*messages, msg, {"role": "tool", "tool_call_id": "x", "content": observation(t)}]


def test_records_are_deltas_so_the_journal_grows_linearly(tokenizer: Any, make_proxy: Any) -> None:
    h = make_proxy(ScriptedEngine(tokenizer, lambda ids, n: tool_reply("ls")))
    sid = h.proxy.open_session()
    run_session(h, sid, 30)
    lines = h.proxy.journal.path(sid).read_bytes().splitlines()
    calls = [orjson.loads(line) for line in lines if orjson.loads(line)["t"] == "call"]
    sizes = [len(line) for line in lines if orjson.loads(line)["t"] == "call"]
    # Each record holds one turn's new content (~1.5 KB of text and its ids), whatever the history.
    assert max(sizes[5:]) < 1.3 * min(sizes[5:]), sizes
    assert all(c["prompt_base"] == f"{sid}-{i - 1:04d}" for i, c in enumerate(calls) if i)
    assert all(len(c["request"]["messages"]) == 2 for c in calls[1:])  # the echoed reply and the tool result
    full = h.proxy.calls(sid)
    assert sum(len(c.prompt_ids) for c in full) > 10 * sum(len(c["prompt_tail"]) for c in calls)


def test_reading_back_gives_whole_calls_with_exact_prompts(tokenizer: Any, make_proxy: Any) -> None:
    h = make_proxy(ScriptedEngine(tokenizer, lambda ids, n: tool_reply("ls")))
    sid = h.proxy.open_session()
    run_session(h, sid, 6)
    stream_sid = h.proxy.open_session()
    run_session(h, stream_sid, 4, stream=True)
    for s in (sid, stream_sid):
        in_memory = h.proxy.calls(s)
        assert CallLog(h.proxy.journal.root).read(s) == in_memory  # a fresh reader: what is on disk
        path = h.proxy.journal.path(s)  # what exports and resumes read, with no CallLog
        assert read_calls(path) == in_memory and count_calls(path) == len(in_memory)
        assert [c.prompt_ids for c in in_memory] == [tuple(p) for p in h.engine.prompts[: len(in_memory)]] \
            or s == stream_sid
        assert in_memory[-1].request["messages"][0] == SYSTEM and len(in_memory[-1].request["messages"]) > 6


def test_a_torn_last_line_is_skipped_and_the_next_write_starts_fresh(tokenizer: Any, make_proxy: Any) -> None:
    h = make_proxy(ScriptedEngine(tokenizer, lambda ids, n: tool_reply("ls")))
    sid = h.proxy.open_session()
    run_session(h, sid, 3)
    h.proxy.journal.stop()  # as if the process died here...
    path = h.proxy.journal.path(sid)
    with open(path, "ab") as f:
        f.write(b'{"v": 2, "t": "call", "call_id": "half-writ')  # ...in the middle of a line
    assert len(CallLog(h.proxy.journal.root).read(sid)) == 3
    log = CallLog(h.proxy.journal.root)
    call = h.proxy.calls(sid)[0]
    log.append(type(call)(**{**call.__dict__, "call_id": "again", "index": 9}))
    assert [c.call_id for c in log.read(sid)][-1] == "again"


def test_journals_of_the_old_whole_call_format_still_read(tokenizer: Any, make_proxy: Any, tmp_path: Path) -> None:
    h = make_proxy(ScriptedEngine(tokenizer, lambda ids, n: tool_reply("ls")))
    sid = h.proxy.open_session()
    run_session(h, sid, 3)
    calls = h.proxy.calls(sid)
    old = tmp_path / "old"
    (old / "calls").mkdir(parents=True)
    (old / "calls" / f"{sid}.jsonl").write_text(
        "".join(json.dumps(c.to_json(), ensure_ascii=False) + "\n" for c in calls))
    assert CallLog(old).read(sid) == calls


def test_a_streamed_call_is_on_disk_before_its_first_byte(tokenizer: Any, make_proxy: Any) -> None:
    seen: dict[str, Any] = {}

    class Watching(ScriptedEngine):
        async def stream(self, prompt_ids: Sequence[int], sampling: SamplingParams) -> AsyncIterator[TokenChunk]:
            seen["at_start"] = journal_path.read_bytes()
            async for c in super().stream(prompt_ids, sampling):
                yield c

    h = make_proxy(Watching(tokenizer, ["hello there"]))
    sid = h.proxy.open_session()
    journal_path = h.proxy.journal.path(sid)
    r = h.run(post(h.proxy.base_url(sid) + "/chat/completions", json={"messages": [TASK], "stream": True}))
    assert r.status_code == 200 and "hello there" in "".join(
        json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
        for line in r.text.splitlines() if line.startswith("data: {") and '"choices":[{' in line)
    first = orjson.loads(seen["at_start"].splitlines()[0])
    assert first["t"] == "call" and "completion_ids" not in first  # the intent, before generation
    kinds = [orjson.loads(line)["t"] for line in journal_path.read_bytes().splitlines()]
    assert kinds == ["call", "outcome", "delivered"]


def test_an_unstreamed_reply_is_on_disk_when_the_client_gets_it(tokenizer: Any, make_proxy: Any) -> None:
    h = make_proxy(ScriptedEngine(tokenizer, ["hello"]))
    sid = h.proxy.open_session()
    r = h.run(post(h.proxy.base_url(sid) + "/chat/completions", json={"messages": [SYSTEM, TASK]}))
    on_disk = h.proxy.journal.path(sid).read_bytes().splitlines()  # read at once, no flush
    assert r.status_code == 200
    rec = orjson.loads(on_disk[0])
    assert rec["t"] == "call" and rec["completion_ids"] == list(h.proxy.calls(sid)[0].completion_ids)


def test_the_journal_and_memory_agree_for_branches_and_breaks(tokenizer: Any, make_proxy: Any) -> None:
    h = make_proxy(ScriptedEngine(tokenizer, lambda ids, n: tool_reply(f"cmd{n}")))
    sid = h.proxy.open_session()
    url = h.proxy.base_url(sid) + "/chat/completions"

    def chat(messages: list[dict[str, Any]]) -> dict[str, Any]:
        r = h.run(post(url, json={"messages": messages, "tools": [BASH_TOOL]}))
        assert r.status_code == 200
        return dict(assistant_echo(r))

    m1 = chat([SYSTEM, TASK])
    hist = [SYSTEM, TASK, m1, tool_result(m1, "a")]
    m2 = chat(hist)
    chat([*hist, m2, tool_result(m2, "b")])
    chat(hist)  # a retry of the second call
    chat([SYSTEM, TASK, {"role": "user", "content": "Summary: nothing yet."}])  # compaction
    calls = h.proxy.calls(sid)
    assert CallLog(h.proxy.journal.root).read(sid) == calls


def test_with_fsync_one_thread_group_commits_and_acknowledges_after(tokenizer: Any, make_custom_proxy: Any) -> None:
    h = make_custom_proxy(ScriptedEngine(tokenizer, lambda ids, n: tool_reply("ls")), fsync=True)
    sid = h.proxy.open_session()
    run_session(h, sid, 3)
    run_session(h, h.proxy.open_session(), 2, stream=True)
    assert h.proxy.journal._writer._thread is not None  # the group-commit thread did the writing
    assert CallLog(h.proxy.journal.root).read(sid) == h.proxy.calls(sid)
