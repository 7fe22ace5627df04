"""Lineages: calls with another system prompt, tool set or agent id are their own trajectories
(sub-agents, summarisers, title generators), and do not break the main agent's token chain."""

from __future__ import annotations

from typing import Any

from agentgym.engines.scripted import ScriptedEngine
from agentgym.reconstruct import reconstruct
from agentgym.types import BreakReason

from .conftest import BASH_TOOL, post, tool_reply
from .test_splice import SYSTEM, TASK, assistant_echo, tool_result


def test_each_system_prompt_tool_set_and_agent_id_is_its_own_lineage(tokenizer: Any, make_proxy: Any) -> None:
    h = make_proxy(ScriptedEngine(tokenizer, lambda ids, n: tool_reply(f"step{n}")))
    sid = h.proxy.open_session()
    url = h.proxy.base_url(sid) + "/chat/completions"

    def chat(messages: list[Any], tools: Any = (BASH_TOOL,), headers: Any = None) -> Any:
        body: dict[str, Any] = {"messages": messages}
        if tools:
            body["tools"] = list(tools)
        r = h.run(post(url, json=body, headers=headers))
        assert r.status_code == 200, r.text
        return assistant_echo(r)

    m1 = chat([SYSTEM, TASK])
    chat([{"role": "system", "content": "Write a 5-word title."}, TASK], tools=())  # a title generator
    hist = [SYSTEM, TASK, m1, tool_result(m1, "a")]
    m2 = chat(hist)
    chat([SYSTEM, {"role": "user", "content": "Explore src/."}], headers={"X-AgentGym-Agent": "explorer"})
    chat([SYSTEM, TASK], tools=[{**BASH_TOOL, "function": {**BASH_TOOL["function"], "name": "sh"}}])  # other tools
    chat([*hist, m2, tool_result(m2, "b")])
    calls = h.proxy.calls(sid)
    assert [c.agent_id for c in calls] == ["main", "agent-1", "main", "explorer", "agent-2", "main"]
    main = [c for c in calls if c.agent_id == "main"]
    assert [c.break_reason for c in main] == [BreakReason.START, None, None]  # the chain held throughout
    trajs = reconstruct(calls, task_id="t", trajectory_id=sid)
    assert [t.agent_id for t in trajs] == ["main", "agent-1", "explorer", "agent-2"]
    assert len(trajs[0].segments) == 1 and trajs[0].delivered_fraction == 1.0
    assert all(t.parent_trajectory_id == sid for t in trajs[1:])


def test_a_new_task_in_the_same_lineage_starts_a_segment_not_a_lineage(tokenizer: Any, make_proxy: Any) -> None:
    h = make_proxy(ScriptedEngine(tokenizer, lambda ids, n: "ok"))
    sid = h.proxy.open_session()
    url = h.proxy.base_url(sid) + "/chat/completions"
    h.run(post(url, json={"messages": [SYSTEM, TASK]}))
    h.run(post(url, json={"messages": [SYSTEM, {"role": "user", "content": "Another task."}]}))
    calls = h.proxy.calls(sid)
    assert [c.agent_id for c in calls] == ["main", "main"]
    assert [c.break_reason for c in calls] == [BreakReason.START, BreakReason.START]
