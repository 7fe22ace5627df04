from __future__ import annotations

import re

import pytest

from agentgym.trainers.anchors import (
    anchor_from_messages,
    new_environment_content,
    normalize_observation,
    with_anchors,
)
from agentgym.types import Step, StopReason, Trajectory, TrajectoryGroup


@pytest.mark.parametrize(
    "text, expected",
    [
        ("  a\n\tb   c  ", "a b c"),
        ("at 2025-01-02T10:11:12.345+01:00 done", "at <time> done"),
        ("Thu Jan  2 10:11:12 UTC 2025", "<time>"),
        ("[10:11:12] tick", "[<time>] tick"),
        ("<object at 0x7f3a2b1c9d00>", "<object at <addr>>"),
        ("req 123e4567-e89b-12d3-a456-426614174000", "req <uuid>"),
        ("container 3f2a9c81b7e4d5aa", "container <hex>"),
        ("wrote /tmp/pytest-of-root/pytest-3/x.txt", "wrote <tmp>"),
        ("cd /var/folders/xy/T/tmpa1b2c3d4 && ls", "cd <tmp> && ls"),
        ("Ran 3 tests in 0.012s", "Ran 3 tests in <dur>"),
        ("Killed (PID 4242)", "Killed (PID <pid>)"),
        # state that must survive: exit codes, counts, line numbers, short hex, plain long numbers
        ("exit code 1; 3 passed, 2 failed; line 12; #fff; 1234567890123", "exit code 1; 3 passed, 2 failed; line 12; #fff; 1234567890123"),
        ("3 steps left", "3 steps left"),
    ],
)
def test_normalize_observation(text: str, expected: str) -> None:
    assert normalize_observation(text) == expected


def test_two_visits_of_one_state_share_an_anchor() -> None:
    a = "$ ls /tmp/tmpk2j3h4\nfoo.py  bar.py\n[done in 0.41s at 10:00:01]"
    b = "$ ls /tmp/tmpzz9x8y\nfoo.py   bar.py\n[done in 1.2s at 10:07:55]"
    c = "$ ls /tmp/tmpzz9x8y\nfoo.py\n[done in 1.2s at 10:07:55]"
    assert normalize_observation(a) == normalize_observation(b) != normalize_observation(c)


def test_custom_patterns() -> None:
    patterns = [(re.compile(r"step \d+"), "step N")]
    assert normalize_observation("step 7  of 0.5s", patterns) == "step N of 0.5s"


def test_new_environment_content_openai_and_anthropic() -> None:
    openai = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "fix the bug"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "1"}]},
        {"role": "tool", "tool_call_id": "1", "content": "file a.py"},
        {"role": "tool", "tool_call_id": "2", "content": [{"type": "text", "text": "exit 0"}]},
    ]
    assert new_environment_content(openai) == "file a.py\nexit 0"
    assert new_environment_content(openai[:2]) == "fix the bug"  # first call: the task itself
    anthropic = [
        {"role": "user", "content": "task"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1"}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                                      "content": [{"type": "text", "text": "  out\n put "}]}]},
    ]
    assert new_environment_content(anthropic) == "  out\n put "
    assert anchor_from_messages(anthropic) == "out put"
    assert anchor_from_messages(anthropic, str.upper) == "  OUT\n PUT "


def test_with_anchors_recomputes_steps() -> None:
    steps = (Step(index=0, call_id="c0", segment_index=0, action_span=(0, 0), observation="a  b", anchor="old"),
             Step(index=1, call_id="c1", segment_index=0, action_span=(0, 0), observation="x\n0.1s"))
    traj = Trajectory(id="t", task_id="k", session_id="s", segments=(), steps=steps, reward=0.0,
                      stop_reason=StopReason.COMPLETED)
    assert [s.anchor for s in with_anchors(traj).steps] == ["a b", "x <dur>"]
    group = with_anchors(TrajectoryGroup("k", (traj,)), lambda o: o[:1])
    assert [s.anchor for s in group.trajectories[0].steps] == ["a", "x"]
    assert traj.steps[0].anchor == "old"  # frozen input untouched
