"""ECHO's two observation masks through the real proxy: the harness's observation targets
(environment output) inside the whole observation bodies; and sampling pinned by a training run
whatever the harness asks for."""

from __future__ import annotations

from typing import Any

from agentgym import registries
from agentgym.engines.scripted import ScriptedEngine
from agentgym.proxy.pipeline import PinnedSampling
from agentgym.proxy.server import Proxy

from .conftest import ProxyHarness, tool_reply
from .test_splice import SYSTEM, TASK, assistant_echo, chat, tool_result, trajectory


def decode_where(tokenizer: Any, ids: tuple[int, ...], mask: tuple[int, ...]) -> str:
    return tokenizer.decode([i for i, m in zip(ids, mask, strict=True) if m])


def test_harness_targets_narrow_the_observation_inside_its_body(tokenizer: Any, make_proxy: Any) -> None:
    react = registries.harnesses.make("agentgym/react-v0")
    engine = ScriptedEngine(tokenizer, [tool_reply("ls"), "no tool call here", tool_reply("pwd"), "Done."])
    h = make_proxy(engine)
    sid = h.proxy.open_session(targets=react.observation_targets)
    msg = assistant_echo(h.run(chat(h, sid, [SYSTEM, TASK])))
    messages = [SYSTEM, TASK, msg, tool_result(msg, "exit code: 0\noutput:\nREADME.md\nsrc\n")]
    text = h.run(chat(h, sid, messages)).json()["choices"][0]["message"]
    # the ReAct script answers a reply without a tool call with a nudge (a user message it wrote)
    messages = [*messages, {"role": "assistant", "content": text["content"]},
                {"role": "user", "content": "Reply with one bash tool call."}]
    msg = assistant_echo(h.run(chat(h, sid, messages)))
    messages = [*messages, msg, tool_result(msg, "exit code: 0\noutput:\n/app\n")]
    assert h.run(chat(h, sid, messages)).status_code == 200

    seg = trajectory(h, sid).segments[0]
    targets = decode_where(tokenizer, seg.input_ids, seg.obs_mask)
    bodies = decode_where(tokenizer, seg.input_ids, seg.obs_body_mask)
    assert "README.md" in targets and "/app" in targets
    assert "exit code" not in targets and "Reply with one bash" not in targets
    assert "exit code: 0" in bodies and "Reply with one bash tool call." in bodies and "README.md" in bodies
    assert all(b >= o for o, b in zip(seg.obs_mask, seg.obs_body_mask, strict=True))  # targets lie inside bodies


def test_without_targets_the_two_masks_agree(tokenizer: Any, make_proxy: Any) -> None:
    engine = ScriptedEngine(tokenizer, [tool_reply("ls"), "Done."])
    h = make_proxy(engine)
    sid = h.proxy.open_session()
    msg = assistant_echo(h.run(chat(h, sid, [SYSTEM, TASK])))
    h.run(chat(h, sid, [SYSTEM, TASK, msg, tool_result(msg, "exit code: 0\noutput:\nREADME.md\n")]))
    seg = trajectory(h, sid).segments[0]
    assert seg.obs_body_mask == () and "exit code" in decode_where(tokenizer, seg.input_ids, seg.obs_mask)
    assert all(c.obs_body_spans is None for c in h.proxy.calls(sid))


def test_pinned_sampling_overrides_the_harness_and_both_are_recorded(tokenizer: Any, tmp_path: Any) -> None:
    engine = ScriptedEngine(tokenizer, ["a", "b"])
    h = ProxyHarness(engine, tmp_path)
    h.loop.run_until_complete(h.proxy.stop())
    h.proxy = Proxy(engine, tmp_path / "pinned", pinned_sampling=PinnedSampling(temperature=1.0, top_p=1.0, max_tokens=7))
    h.loop.run_until_complete(h.proxy.start())
    try:
        sid = h.proxy.open_session()
        r = h.run(chat(h, sid, [SYSTEM, TASK], temperature=0.2, top_p=0.5, max_tokens=100))
        assert r.status_code == 200
        call = h.proxy.calls(sid)[0]
        assert (call.request["temperature"], call.request["top_p"], call.request["max_tokens"]) == (0.2, 0.5, 100)
        assert (call.sampling["temperature"], call.sampling["top_p"], call.sampling["max_tokens"]) == (1.0, 1.0, 7)
        assert engine.samplings[-1].temperature == 1.0 and engine.samplings[-1].max_tokens == 7
        assert h.proxy.journal.read(sid) == [call]
    finally:
        h.close()
