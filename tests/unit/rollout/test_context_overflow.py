"""An episode whose harness stops after the proxy refused its last request for its length ends
as ``context_overflow``, not ``harness_error``; one that compacts and goes on is unaffected."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest

from agentgym.engines.scripted import ScriptedEngine
from agentgym.env import Env, Evaluation
from agentgym.harness import Harness, HarnessContext, Launch
from agentgym.proxy.server import Proxy
from agentgym.rollout.episode import EpisodeSpec, run_episode
from agentgym.runtime.base import Runtime
from agentgym.runtime.images import ImageCache
from agentgym.runtime.local import LocalBackend
from agentgym.types import StopReason, Task

AGENT = """
import json, sys, urllib.request, urllib.error
url = sys.argv[1] + "/chat/completions"
def ask(text):
    req = urllib.request.Request(url, json.dumps({"messages": [{"role": "user", "content": text}]}).encode(),
                                 {"Content-Type": "application/json"})
    try:
        return urllib.request.urlopen(req).status
    except urllib.error.HTTPError as e:
        return e.code
print(ask("short"))
status = ask("word " * 400)            # over the context: refused
if sys.argv[2] == "compact":
    print(ask("a summary"))            # the harness compacts and goes on
    sys.exit(0)
sys.exit(1 if status == 400 else 0)    # gives up
"""


class Once(Env):
    id = "test/once-v0"

    def tasks(self) -> list[Task]:
        return [Task(id="t", instruction="do it", env=self.id, workdir="/app")]

    async def evaluate(self, task: Task, runtime: Runtime) -> Evaluation:
        return Evaluation(reward=0.0)


class Script(Harness):
    id = "test/overflow-v0"

    def __init__(self, mode: str, script: Path) -> None:
        self.mode = mode
        self.script = script

    async def install(self, runtime: Runtime) -> None:
        await runtime.write_file(IN_RUNTIME, self.script.read_bytes())

    def launch(self, ctx: HarnessContext, runtime: Runtime | None) -> Launch:
        path = runtime.process_path(IN_RUNTIME) if runtime is not None else IN_RUNTIME
        return Launch(cmd=f"{sys.executable} {path} {ctx.base_url} {self.mode}")


IN_RUNTIME = "/opt/agentgym-test/agent.py"
"""Where the harness puts its script (the local sandbox does not show the host's temp dirs)."""


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    from agentgym.models.tiny import train_tokenizer

    return train_tokenizer()


@pytest.mark.parametrize(("mode", "stop"), [("give-up", StopReason.CONTEXT_OVERFLOW),
                                            ("compact", StopReason.COMPLETED)])
def test_an_episode_that_outgrew_the_context_says_so(tokenizer: Any, tmp_path: Path, mode: str,
                                                     stop: StopReason) -> None:
    script = tmp_path / "agent.py"
    script.write_text(AGENT)
    env = Once()

    async def main() -> Any:
        (tmp_path / "rt").mkdir()
        backend = LocalBackend(tmp_root=str(tmp_path / "rt"))
        proxy = Proxy(ScriptedEngine(tokenizer, lambda ids, n: "ok"), tmp_path / "run", max_model_len=128)
        await proxy.start()
        try:
            return (await run_episode(EpisodeSpec(task=env.tasks()[0], sample_index=0, run_id="r"), env=env,
                                      harness=Script(mode, script), proxy=proxy, backend=backend,
                                      images=ImageCache(backend), timeout_s=60))[0]
        finally:
            await proxy.stop()

    traj = asyncio.run(main())
    assert traj.stop_reason == stop, traj.error
    assert traj.num_steps == (1 if mode == "give-up" else 2)
