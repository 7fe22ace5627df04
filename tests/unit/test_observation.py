"""The observation rule: which messages are environment output, their text, anchors."""

from __future__ import annotations

import re

import pytest

from agentgym.observation import anchor, is_observation, new_observation, normalize_observation


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


def test_new_observation_openai_and_anthropic() -> None:
    openai = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "fix the bug"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "1"}]},
        {"role": "tool", "tool_call_id": "1", "content": "file a.py"},
        {"role": "tool", "tool_call_id": "2", "content": [{"type": "text", "text": "exit 0"}]},
    ]
    assert new_observation(openai) == "file a.py\nexit 0"
    assert new_observation(openai[:2]) == "fix the bug"  # first call: the task itself
    anthropic = [
        {"role": "user", "content": "task"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1"}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                                      "content": [{"type": "text", "text": "  out\n put "}]}]},
    ]
    assert new_observation(anthropic) == "  out\n put "
    assert anchor(anthropic) == "out put"
    assert anchor(anthropic, str.upper) == "  OUT\n PUT "


def test_is_observation_drives_obs_mask_and_step_observation_alike() -> None:
    msgs = [{"role": "system", "content": "s"}, {"role": "user", "content": "task"},
            {"role": "assistant", "content": "x"}, {"role": "user", "content": "Tool call error: use bash"},
            {"role": "assistant", "content": "y"}, {"role": "function", "content": "old-style output"}]
    assert [is_observation(msgs, i) for i in range(len(msgs))] == [False, False, False, True, False, True]
    assert new_observation(msgs[:4]) == "Tool call error: use bash"
    assert new_observation(msgs) == "old-style output"
