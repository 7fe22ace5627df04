"""An agent cannot fake its reward: each attack an adversarial agent could run (as root, in its
own container) leaves the unsolved ``hello-file`` task at reward 0, and leaves evidence on the
evaluation; the oracle still scores 1 (every built-in task: tests/integration/envs/test_terminal_tasks.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agentgym import registries
from agentgym.env import Evaluation
from agentgym.envs.harbor import HarborEnv
from agentgym.runtime.docker import DockerBackend

pytestmark = [pytest.mark.docker]

FAKE_REWARD = "mkdir -p /logs/verifier; echo 1 > /logs/verifier/reward.txt"
ATTACKS: dict[str, tuple[str, str]] = {
    # name: (what the agent runs, the evidence kind it leaves)
    "background loop rewriting the reward": (
        f"nohup bash -c 'while true; do {FAKE_REWARD}; sleep 0.02; done' >/dev/null 2>&1 &", "process:"),
    "setsid daemon rewriting the reward": (
        f"setsid bash -c 'while true; do {FAKE_REWARD}; sleep 0.02; done' </dev/null >/dev/null 2>&1 &", "process:"),
    "planted reward file": (FAKE_REWARD, "reward-file:"),
    "symlinked reward directory": (
        "rm -rf /logs/verifier && mkdir -p /logs /tmp/fake && echo 1 > /tmp/fake/reward.txt && "
        "ln -s /tmp/fake /logs/verifier", "reward-file:"),
    "bash shadowed earlier in PATH": (
        f"printf '#!/bin/sh\\n{FAKE_REWARD}\\n' > /usr/local/bin/bash && chmod +x /usr/local/bin/bash",
        "system-path:"),
    "replaced binary the verifier calls (cmp)": (
        "printf '#!/bin/sh\\nexit 0\\n' > /usr/bin/cmp && chmod +x /usr/bin/cmp", "system-path:"),
    "replaced /bin symlink with a directory of fakes": (
        f"cp -a /usr/bin /tmp/fakebin && printf '#!/usr/bin/sh\\n{FAKE_REWARD}\\n' > /tmp/fakebin/bash && "
        "chmod +x /tmp/fakebin/bash && rm /bin && ln -s /tmp/fakebin /bin", "system-path:"),
    "loader preload": ("echo /tmp/evil.so > /etc/ld.so.preload", "system-path:"),
}


def attack_then_evaluate(backend: DockerBackend, attack: str | None, solve: bool = False) -> Evaluation:
    env: HarborEnv = registries.envs.make("terminal/hello-file-v0")
    task = env.tasks()[0]

    async def main() -> Evaluation:
        rt = await env.start(task, backend)
        try:
            if solve:
                assert (await env.oracle(task, rt)).ok
            if attack:
                result = await rt.exec(attack, timeout=30)
                assert result.exit_code == 0, result.stderr
                await asyncio.sleep(0.2)  # let a background writer get going
            return await env.evaluate(task, rt)
        finally:
            await rt.stop()

    return asyncio.run(main())


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_gives_reward_0_and_leaves_evidence(docker_backend: DockerBackend, name: str) -> None:
    command, kind = ATTACKS[name]
    ev = attack_then_evaluate(docker_backend, command)
    assert ev.reward == 0.0, (name, ev.details)
    assert any(e.startswith(kind) for e in ev.details["tampering"]), ev.details["tampering"]
    assert "system paths from agentgym/harbor-hello-file" in ev.details["isolation"]
    assert "cannot be preloaded" not in ev.details["stderr"]


def test_an_honest_solution_still_scores_1_and_shows_no_tampering(docker_backend: DockerBackend) -> None:
    ev = attack_then_evaluate(docker_backend, None, solve=True)
    assert ev.reward == 1.0 and ev.details["tampering"] == []


def test_solving_and_attacking_still_scores_what_was_solved(docker_backend: DockerBackend) -> None:
    """The verifier reads the agent's files: an attack does not erase a real solution."""
    command, _ = ATTACKS["replaced binary the verifier calls (cmp)"]
    assert attack_then_evaluate(docker_backend, command, solve=True).reward == 1.0


def test_verifier_sandbox_has_no_network_and_no_agent_process(docker_backend: DockerBackend) -> None:
    from agentgym.runtime.base import VerifierSpec

    env: HarborEnv = registries.envs.make("terminal/hello-file-v0")
    task = env.tasks()[0]

    async def main() -> tuple[Any, Any]:
        rt = await env.start(task, docker_backend)
        await rt.exec("nohup sleep 300 >/dev/null 2>&1 &", timeout=10)
        sealed = await rt.seal(VerifierSpec(trusted_image=task.image))
        try:
            procs = await sealed.runtime.exec("cat /proc/[0-9]*/cmdline | tr '\\0' ' '", timeout=10, login=False)
            net = await sealed.runtime.exec("cat /proc/net/dev | grep -v -c lo:", timeout=10, login=False)
            return procs, net
        finally:
            await sealed.runtime.stop()

    procs, net = asyncio.run(main())
    assert "sleep infinity" in procs.stdout and "sleep 300" not in procs.stdout  # no agent process
    assert int(net.stdout.strip()) == 2   # the two header lines: no interface but loopback


def test_local_sandbox_hides_the_tasks_tests_and_solution_and_verifies_after_attacks(tmp_path: Any) -> None:
    """On the sandboxed local runtime the agent cannot read the task's verifier or oracle from
    the host, and a planted or symlinked reward does not count."""
    from agentgym.runtime.local import LocalBackend

    env: HarborEnv = registries.envs.make("terminal/hello-file-v0")
    task = env.tasks()[0]
    assert task.tests_dir and task.solution_dir

    async def main() -> tuple[Any, Any, Evaluation]:
        rt = await env.start(task, LocalBackend(tmp_root=str(tmp_path)))
        try:
            peek = await rt.exec(f"cat {task.tests_dir}/test.sh; ls {task.solution_dir}", timeout=30)
            attack = await rt.exec("mkdir -p /tmp/fake && echo 1 > /tmp/fake/reward.txt && rm -rf /logs/verifier; "
                                   "mkdir -p /logs && ln -sfn /tmp/fake /logs/verifier", timeout=30)
            return peek, attack, await env.evaluate(task, rt)
        finally:
            await rt.stop()

    peek, attack, ev = asyncio.run(main())
    assert attack.exit_code == 0, attack.stderr
    assert peek.exit_code != 0 and "AGENTGYM_ROOT" not in peek.stdout
    assert ev.reward == 0.0 and any(e.startswith("reward-file:") for e in ev.details["tampering"])
    assert "bubblewrap" in ev.details["isolation"]
