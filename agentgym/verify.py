"""Running an environment's verifier where the agent cannot reach it.

An environment's ``evaluate`` calls :func:`run_verifier` with the command that scores the final
state. When the runtime can seal (:meth:`agentgym.runtime.base.Runtime.seal`: Docker), the
command runs in a fresh sandbox over the agent's files — every process the episode started is
gone, the task image's own system programs and libraries stand in for the agent's copies, no
network — with a clean environment, no login profile, and an empty host directory mounted at
``/logs/verifier`` whose contents are read on the host. Runtimes that cannot seal run the
command in place, after removing ``/logs/verifier``; the result says which protection applied
(``isolation``) and what looked like tampering (``evidence``). See ``docs/threat-model.md``.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field

from agentgym.errors import EnvError
from agentgym.runtime.base import ExecResult, Runtime, RuntimeFileNotFound, VerifierSpec
from agentgym.runtime.trusted import SYSTEM_PATH, read_tree

__all__ = ["REWARD_DIR", "VerifierRun", "run_verifier"]

REWARD_DIR = "/logs/verifier"
IN_PLACE = "in place: the agent's own sandbox and programs (this runtime cannot seal)"


@dataclass(frozen=True)
class VerifierRun:
    result: ExecResult
    files: Mapping[str, bytes]
    """What the verifier wrote under ``/logs/verifier`` (relative path -> bytes)."""
    evidence: list[str] = field(default_factory=list)
    isolation: str = ""

    def text(self, name: str) -> str | None:
        data = self.files.get(name)
        return None if data is None else data.decode("utf-8", "replace")


async def run_verifier(runtime: Runtime, command: str, *, trusted_image: str | None,
                       mounts: Mapping[str, str] | None = None, env: Mapping[str, str] | None = None,
                       timeout: float = 600.0, workdir: str | None = None,
                       in_place_files: Mapping[str, str] | None = None, keep: bool = False) -> VerifierRun:
    """Run ``command`` as the verifier of ``runtime``'s final state (see the module docstring).

    Args:
        trusted_image: the task's image before the agent ran (``None``: keep the agent's programs).
        mounts: host directory -> path, read-only, for the verifier only (its tests).
        env: the verifier's environment (sealed: ``PATH`` is the system path unless given).
        in_place_files: for runtimes that cannot seal, host directory -> path uploaded first
            (what ``mounts`` would have provided).
        keep: the episode goes on afterwards (a stage of a multi-stage task): ``runtime`` is left
            running (:attr:`VerifierSpec.keep`).
    """
    try:
        sealed = await runtime.seal(VerifierSpec(trusted_image=trusted_image, mounts=dict(mounts or {}),
                                                 reward_dir=REWARD_DIR, keep=keep))
    except NotImplementedError:
        return await _in_place(runtime, command, dict(env or {}), timeout, workdir, in_place_files or mounts or {})
    environment = {"PATH": sealed.path or SYSTEM_PATH, **(env or {})}
    try:
        result = await sealed.runtime.exec(command, timeout=timeout, env=environment, workdir=workdir, login=False)
        # Whatever the verifier started (the agent's code it ran, say) is killed before the
        # reward is read, so nothing can write it afterwards.
        if sealed.runtime is not runtime or not keep:
            await sealed.runtime.end_processes()
        files = read_tree(sealed.reward_dir)
    finally:
        if sealed.runtime is not runtime or not keep:
            with contextlib.suppress(Exception):
                await sealed.runtime.stop()
        shutil.rmtree(sealed.reward_dir, ignore_errors=True)
    return VerifierRun(result=result, files=files, evidence=sealed.evidence, isolation=sealed.isolation)


async def _in_place(runtime: Runtime, command: str, env: Mapping[str, str], timeout: float, workdir: str | None,
                    uploads: Mapping[str, str]) -> VerifierRun:
    # Emptied, not removed: in the local runtime's sandbox these directories are mount points.
    for path in (REWARD_DIR, *uploads.values()):
        prep = await runtime.exec(f"mkdir -p {path} && find {path} -mindepth 1 -delete", timeout=60)
        if not prep.ok:
            raise EnvError(f"cannot prepare {path} for the verifier: {prep.stderr.strip() or prep.exit_code}")
    for host, path in uploads.items():
        await runtime.upload_dir(host, path)
    result = await runtime.exec(command, timeout=timeout, env=dict(env), workdir=workdir, login=False)
    files: dict[str, bytes] = {}
    for name in ("reward.txt", "reward.json"):
        with contextlib.suppress(RuntimeFileNotFound, FileNotFoundError):
            files[name] = await runtime.read_file(f"{REWARD_DIR}/{name}")
    return VerifierRun(result=result, files=files, evidence=[], isolation=IN_PLACE)
