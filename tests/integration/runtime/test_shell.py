"""ShellSession: one interactive shell per episode over pexpect, in Docker (``docker exec -it``)
and in the local runtime's sandbox; and GymEnv(shell="persistent") on top of it."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import agentgym
from agentgym.errors import RuntimeError_
from agentgym.runtime import RuntimeSpec, get_backend
from agentgym.runtime.base import Runtime, RuntimeBackend
from agentgym.runtime.shell import CTRL_C, MAX_LINE, ShellSession

BACKENDS = ["local", pytest.param("docker", marks=pytest.mark.docker)]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RuntimeBackend]:
    b = get_backend(request.param, **({"tmp_root": str(tmp_path)} if request.param == "local" else {}))
    yield b
    b.close()


def with_shell(backend: RuntimeBackend, body: Callable[[ShellSession], Any], timeout: float = 10.0) -> Any:
    async def start() -> Runtime:
        image = "agentgym/base:bookworm" if backend.uses_images else None
        return await backend.start(RuntimeSpec(image=image, network="none"))

    loop = asyncio.new_event_loop()
    runtime = loop.run_until_complete(start())
    try:
        with ShellSession.open(runtime, timeout=timeout) as shell:
            return body(shell)
    finally:
        loop.run_until_complete(runtime.stop())
        loop.close()


def test_state_persists_between_steps_cd_variables_and_functions(backend: RuntimeBackend) -> None:
    def body(shell: ShellSession) -> None:
        first = shell.run("cd /tmp && x=42 && f() { echo \"f:$1\"; }")
        assert (first.output, first.exit_code) == ("", 0)
        again = shell.run("pwd; echo $x; f y")
        assert (again.output, again.exit_code) == ("/tmp\n42\nf:y\n", 0)

    with_shell(backend, body)


def test_each_step_returns_its_own_output_and_exit_status(backend: RuntimeBackend) -> None:
    def body(shell: ShellSession) -> None:
        assert shell.run("false").exit_code == 1
        missing = shell.run("ls /nonexistent-dir")
        assert missing.exit_code == 2 and "No such file" in missing.output
        loop = shell.run("for i in 1 2 3\ndo echo n$i\ndone")
        assert (loop.output, loop.exit_code) == ("n1\nn2\nn3\n", 0)
        assert shell.run("printf 'no newline'").output == "no newline"

    with_shell(backend, body)


def test_an_unclosed_quote_leaves_the_shell_waiting_for_more(backend: RuntimeBackend) -> None:
    def body(shell: ShellSession) -> None:
        opened = shell.run("echo 'one")
        assert opened.waiting and opened.exit_code is None
        closed = shell.run("two'")
        assert (closed.output, closed.exit_code, closed.waiting) == ("one\ntwo\n", 0, False)

    with_shell(backend, body)


def test_a_sleep_times_out_keeps_running_and_ctrl_c_interrupts_it(backend: RuntimeBackend) -> None:
    def body(shell: ShellSession) -> None:
        t0 = time.monotonic()
        slow = shell.run("sleep 60; echo finished", timeout=1.0)
        assert slow.timed_out and slow.exit_code is None
        assert time.monotonic() - t0 < 5
        typed = shell.run("echo typed-ahead", timeout=0.5)  # goes to the running command
        assert typed.timed_out
        stopped = shell.run(CTRL_C)
        assert stopped.exit_code == 130 and "finished" not in stopped.output
        after = shell.run("echo alive")
        # Ctrl-C dropped what was typed ahead: only this step's output.
        assert (after.output, after.exit_code) == ("alive\n", 0)

    with_shell(backend, body)


def test_a_command_that_finishes_after_its_timeout_hands_its_output_to_the_next_step(backend: RuntimeBackend) -> None:
    def body(shell: ShellSession) -> None:
        assert shell.run("sleep 1.5; echo late", timeout=0.5).timed_out
        time.sleep(2)
        later = shell.run("echo now")
        assert later.output == "late\nnow\n" and later.exit_code == 0

    with_shell(backend, body)


def test_lines_typed_into_a_running_program_return_when_it_is_quiet(backend: RuntimeBackend) -> None:
    def body(shell: ShellSession) -> None:
        assert shell.run("cat", timeout=1.0).timed_out
        echoed = shell.run("hello", timeout=5.0)
        assert echoed.output == "hello\n" and not echoed.timed_out and echoed.exit_code is None
        done = shell.run("\x04")  # Ctrl-D: end of cat's input
        assert done.exit_code == 0
        assert shell.run("echo back").output == "back\n"

    with_shell(backend, body)


def test_ctrl_d_at_the_prompt_does_not_end_the_shell_and_a_line_too_long_is_refused(backend: RuntimeBackend) -> None:
    def body(shell: ShellSession) -> None:
        shell.run("y=1")
        shell.run("\x04")
        assert shell.run("echo $y").output == "1\n"
        long = shell.run("echo " + "a" * (MAX_LINE + 1))
        assert not long.typed and "nothing was typed" in long.output
        assert shell.run("echo ok").output == "ok\n"

    with_shell(backend, body)


def test_an_exited_shell_is_restarted_by_the_next_step(backend: RuntimeBackend) -> None:
    def body(shell: ShellSession) -> None:
        shell.run("z=1")
        gone = shell.run("exit 3")
        assert "the shell exited" in gone.output
        fresh = shell.run("echo ${z:-unset}")
        assert fresh.restarted and fresh.output == "unset\n"

    with_shell(backend, body)


def test_the_local_runtime_without_isolation_refuses_a_shell(tmp_path: Path) -> None:
    async def main() -> None:
        rt = await get_backend("local-unsafe", tmp_root=str(tmp_path)).start(RuntimeSpec())
        try:
            with pytest.raises(RuntimeError_, match="cannot run a persistent shell"):
                ShellSession.open(rt)
        finally:
            await rt.stop()

    asyncio.run(main())


# -- the gymnasium adapter ------------------------------------------------------------------------
def test_ctrl_c_interrupts_even_when_the_caller_ignores_sigint(backend: RuntimeBackend) -> None:
    # A process started in the background by a non-interactive shell (a CI job) ignores SIGINT,
    # and ignored signals are inherited across exec: the shell must not inherit that.
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        def body(shell: ShellSession) -> None:
            assert shell.run("sleep 60", timeout=1.0).timed_out
            stopped = shell.run(CTRL_C)
            assert stopped.exit_code == 130, stopped

        with_shell(backend, body)
    finally:
        signal.signal(signal.SIGINT, old)


@pytest.mark.parametrize("name", BACKENDS)
def test_gym_env_with_a_persistent_shell_solves_hello_file(name: str, tmp_path: Path) -> None:
    backend = get_backend(name, **({"tmp_root": str(tmp_path)} if name == "local" else {}))
    env = agentgym.make("terminal/hello-file-v0", backend=backend, shell="persistent", command_timeout=2)
    try:
        env.reset(seed=0)
        assert env.step("cd /app && greeting='Hello, agentgym!'")[0] == "exit code: 0\n"
        obs, *_ = env.step("sleep 30")
        assert obs.startswith("(still running after 2s")
        obs, *_ = env.step(CTRL_C)
        assert obs.startswith("exit code: 130")
        env.step('printf "%s\\n" "$greeting" > hello.txt')  # relative: the cd persisted
        obs, reward, terminated, truncated, _ = env.step("submit")
        assert (obs, reward, terminated, truncated) == ("reward: 1", 1.0, True, False)
    finally:
        env.close()
        backend.close()


MULTI_STEP = Path(__file__).resolve().parents[2] / "fixtures" / "tasks" / "harbor-multi-step"


def test_a_persistent_shell_lives_across_the_stages_of_a_multi_step_task(tmp_path: Path) -> None:
    """Submitting a stage verifies it and goes on in the same sandbox and the same shell: a
    variable set in the first stage is still set in the second."""
    backend = get_backend("local", tmp_root=str(tmp_path))
    env = agentgym.make(str(MULTI_STEP), backend=backend, shell="persistent", command_timeout=5)
    try:
        obs, info = env.reset(seed=0)
        assert obs.startswith('Write "one"') and info["stages"] == 2
        env.step("cd /app && first=one && echo $first > log.txt")
        obs, reward, terminated, _, info = env.step("submit")
        assert obs.startswith("Append the contents") and (reward, terminated) == (0.0, False)
        assert env.step("pwd; echo $first")[0] == "exit code: 0\n/app\none\n"
        env.step("cat extra.txt >> log.txt")
        obs, reward, terminated, _, info = env.step("submit")
        assert (obs, reward, terminated) == ("reward: 1", 1.0, True)
        assert info["evaluation"]["steps_run"] == 2
    finally:
        env.close()
        backend.close()
