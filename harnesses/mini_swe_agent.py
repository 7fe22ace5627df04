"""``mini-swe-agent/mini-v2``: the real ``mini`` CLI of mini-swe-agent 2.4.6 (PyPI), unmodified.

Installation
------------
Everything comes from one lock, ``harnesses/locks/mini-swe-agent.txt``: the whole dependency
closure at exact versions with sha256 hashes (:mod:`agentgym.harnesses.locks`). litellm and the
OpenAI SDK are pinned in ``mini-swe-agent.in`` because they decide the bytes on the wire
(litellm 1.108+ drops ``provider_specific_fields`` from echoed history and reorders the body).
``mcp`` is required: litellm imports it when ``tools`` are sent and, without it, mini retries
forever.

Docker: :meth:`MiniSweAgentHarness.image_layer` downloads the lock's wheels on the host (for
CPython 3.11 manylinux x86-64, Debian bookworm's ``python3``; cached, see
:mod:`agentgym.harnesses.wheelhouse`) and installs them offline, hash-checked, into a venv at
``/opt/mini`` (``python3 -m venv`` needs ``python3-venv``, which ``agentgym/base:bookworm``
has). Local runtime: a virtualenv on the host built from the same lock
(:func:`~agentgym.harnesses.wheelhouse.ensure_venv`, cached under
``~/.cache/agentgym/venvs/``), never whatever ``mini`` happens to be installed.

Launch
------
Environment: ``MSWEA_CONFIGURED=true MSWEA_COST_TRACKING=ignore_errors
LITELLM_LOCAL_MODEL_COST_MAP=True OPENAI_API_KEY=<key> OPENAI_BASE_URL=<session base url>
MSWEA_MODEL_NAME=openai/<model>`` plus ``MSWEA_GLOBAL_CONFIG_DIR`` inside the output directory
(so no ``~/.config/mini-swe-agent/.env`` of the host leaks in), then::

    mini -y --exit-immediately -c <builtin mini.yaml> -c agent.step_limit=N -c agent.cost_limit=0 \\
         -c model.set_cache_control=null [-c model.model_kwargs.temperature=T ...] \\
         -c environment.timeout=S -t "$AGENTGYM_TASK" -o <output_dir>/mini.traj.json </dev/null

Limits, as mini-swe-agent 2.4.6 implements them (``minisweagent/agents/default.py``):

- ``agent.step_limit`` (config only, no CLI flag; the default ``mini.yaml`` has 0 = none) is
  checked *before* each model call: at most N model calls, then the run ends with exit status
  ``LimitsExceeded``. Any ``-c`` replaces the default config, so ``mini.yaml`` is passed first,
  by absolute path (a relative ``mini.yaml`` would be looked up in the task's working directory
  first).
- ``agent.cost_limit`` (``-l``) defaults to $3; it is set to 0 (off) because the step limit is
  the limit and litellm may know a price for the policy's name.
- ``agent.max_consecutive_format_errors`` = 3: three replies in a row without a valid ``bash``
  tool call end the run with ``RepeatedFormatError``.
- Every command runs in a fresh ``subprocess`` shell with ``environment.timeout`` seconds
  (default 30); output over 10,000 characters is shown as head and tail.

``mini`` exits 0 whenever the agent loop ends normally, step limit included, so the launch
command reads ``info.exit_status`` from the trajectory file and exits 3 for ``LimitsExceeded``
(:attr:`MiniSweAgentHarness.step_limit_exit_codes`), 4 for ``RepeatedFormatError``, 0 for
``Submitted``. An uncaught error (the API failing after its retries) makes ``mini`` itself exit
1, which is kept.

The agent finishes when a command exits 0 and the first line of its output is
``COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT`` (``echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT``); the
rest of that output is the "submission". A reply without a tool call is *not* a final answer:
it is a format error (see below).

What it sends (recorded against a logging server; see ``tests/fixtures/wire/``)
----------------------------------------------------------------------------------
- ``POST {OPENAI_BASE_URL}/chat/completions``, **non-streaming**, via litellm -> the OpenAI
  Python SDK (``User-Agent: OpenAI/Python 2.54.0``, ``X-Stainless-*`` headers,
  ``Authorization: Bearer <OPENAI_API_KEY>``, ``Accept-Encoding: gzip, deflate``).
- Body keys: ``model`` (the name without the ``openai/`` prefix), ``messages``, ``tools``. No
  ``temperature``, ``max_tokens``, ``stop``, ``seed``, ``tool_choice`` or ``stream`` unless set
  through ``model.model_kwargs`` (then sent as given; ``drop_params: true`` is in its config).
- ``tools`` is one function tool ``bash`` with parameters ``{"command": string}`` (required).
- Messages: ``system``, ``user`` (the task in mini's instance template, including ``uname``
  output), then per step the assistant message as litellm parsed it — keys ``content``
  (**omitted, not null, when the reply had no content**), ``role``, ``tool_calls`` (each
  ``{"function": {"arguments", "name"}, "id", "type"}``), any ``reasoning_content`` the server
  returned, and a non-standard ``provider_specific_fields: {"refusal": null}`` — followed by one
  ``tool`` message per tool call (``content``, ``tool_call_id``, ``role``) whose content is JSON
  text ``{"returncode": N, "output": "..."}``. All tool calls of a reply are executed, in order.
- A reply **without** a tool call (or with bad arguments or an unknown tool) is a format error:
  the assistant message is **dropped from the history** and a ``user`` message "Tool call error:
  ..." is appended instead. So the next request does not extend the previous completion: it
  branches from the request before it.
- Errors (litellm maps status codes to exception types; mini retries with tenacity, 10 attempts
  by default, waits 4 s doubling to 60 s, ``MSWEA_MODEL_RETRY_STOP_AFTER_ATTEMPT``):
  5xx and 429 are retried twice more by the OpenAI SDK inside each attempt (3 requests per
  attempt, ``x-stainless-retry-count`` 0, 1, 2); a plain 400 is retried by tenacity (one
  request per attempt, about 6 minutes in all); 401, 403, 404 and a 400 whose message says the
  context length was exceeded ("maximum context length") abort at once, and ``mini`` exits 1.
  A proxy that must stop mini quickly answers 404 or a context-length 400.
- Starting ``mini`` (importing litellm) takes several seconds of CPU before the first request.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from agentgym.errors import HarnessError
from agentgym.harness import Harness, HarnessContext, ImageLayer, Launch, tool_call_text
from agentgym.harnesses.locks import HarnessLock, harness_lock
from agentgym.harnesses.wheelhouse import LOCK_NAME, ensure_venv, ensure_wheelhouse
from agentgym.runtime.base import Runtime

LOCK: HarnessLock = harness_lock("mini-swe-agent")
"""What the image and the host venv install: the whole closure, pinned and hashed."""
VERSION = LOCK.pinned("mini-swe-agent")
VENV = "/opt/mini"
CONTAINER_CONFIG = f"{VENV}/config/mini.yaml"
"""The built-in ``mini.yaml`` in the image (a symlink made at build time)."""
TRAJ_NAME = "mini.traj.json"
SUBMIT_SENTINEL = "COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT"
STEP_LIMIT_EXIT_CODE = 3
FORMAT_ERRORS_EXIT_CODE = 4

EXIT_STATUS_CODES: Mapping[str, int] = {
    "Submitted": 0,
    "LimitsExceeded": STEP_LIMIT_EXIT_CODE,
    "TimeExceeded": STEP_LIMIT_EXIT_CODE,
    "RepeatedFormatError": FORMAT_ERRORS_EXIT_CODE,
}
"""``info.exit_status`` in mini's trajectory -> the launch command's exit status."""

_EXIT_MAPPER = (  # double quotes only, so shlex.quote wraps it in one pair of single quotes
    'import json, os, sys\n'
    'try:\n'
    '    info = json.load(open(os.environ["AGENTGYM_MINI_TRAJ"]))["info"]\n'
    'except (OSError, ValueError, KeyError) as e:\n'
    '    sys.exit("agentgym: cannot read the mini trajectory: %s" % e)\n'
    'status = info.get("exit_status") or ""\n'
    f'codes = {json.dumps(dict(EXIT_STATUS_CODES))}\n'
    'if status not in codes:\n'
    '    sys.exit("agentgym: mini ended with exit status %r" % status)\n'
    'if codes[status]:\n'
    '    print("agentgym: mini ended with exit status %s" % status, file=sys.stderr)\n'
    'sys.exit(codes[status])\n'
)


def _host_mini(lock: HarnessLock = LOCK) -> tuple[str, str, str]:
    """(``mini`` executable, its built-in ``mini.yaml``, the venv's python) on this host, for the
    local runtime: the locked virtualenv, built on first use (about a minute, once)."""
    venv = ensure_venv(lock)
    mini = venv / "bin" / "mini"
    configs = sorted(venv.glob("lib/python3*/site-packages/minisweagent/config/mini.yaml"))
    if not mini.is_file() or not configs:
        raise HarnessError(f"the mini-swe-agent virtualenv at {venv} has no `mini` or no mini.yaml; "
                           f"delete it and run again")
    return str(mini), str(configs[0]), str(venv / "bin" / "python")


class MiniSweAgentHarness(Harness):
    """mini-swe-agent's ``mini`` CLI, run non-interactively against the proxy session.

    Args:
        temperature, max_tokens, seed: sent as ``model.model_kwargs`` (``None`` leaves one out:
            by default mini sends none of them).
        command_timeout: ``environment.timeout``, seconds per command (mini's default is 30).
        retry_attempts: ``MSWEA_MODEL_RETRY_STOP_AFTER_ATTEMPT`` (``None``: mini's 10).
        extra_config: more ``key=value`` config specs, passed as ``-c`` after ours
            (for example ``{"agent.max_consecutive_format_errors": 5}``).
        requirements: what the image installs (pinned mini-swe-agent and mcp by default).
        python_version: the image's ``python3`` version the wheels are downloaded for.
    """

    id: ClassVar[str] = "mini-swe-agent/mini-v2"
    dialects: ClassVar[tuple[str, ...]] = ("openai",)
    streams: ClassVar[bool] = False
    uses_tools: ClassVar[bool] = True
    step_limit_exit_codes: ClassVar[tuple[int, ...]] = (STEP_LIMIT_EXIT_CODE,)
    version: ClassVar[str] = VERSION
    install_mb: ClassVar[float | None] = 737
    """``du -sm`` of the locked host virtualenv (Python 3.11)."""

    def __init__(self, *, temperature: float | None = None, max_tokens: int | None = None,
                 seed: int | None = None, command_timeout: int = 30, retry_attempts: int | None = None,
                 extra_config: Mapping[str, Any] | None = None, lock: HarnessLock = LOCK,
                 python_version: str = "3.11") -> None:
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.seed = seed
        self.command_timeout = command_timeout
        self.retry_attempts = retry_attempts
        self.extra_config = dict(extra_config or {})
        self.lock = lock
        self.python_version = python_version

    def observation_targets(self, message: Mapping[str, Any]) -> Sequence[tuple[int, int]] | None:
        """The ``output`` string inside a tool result's JSON text (escaped as it appears); nothing
        of mini's own messages to the model (its "Tool call error" format warnings)."""
        content = message.get("content")
        if not isinstance(content, str):
            return None
        if message.get("role") == "user":
            return ()
        key = content.find('"output": "')
        end = content.rfind('"')
        if key < 0 or end <= key + len('"output": "'):
            return None
        return ((key + len('"output": "'), end),)

    def check_replies(self) -> Sequence[str]:
        """A ``bash`` call, then the submission command (a reply without a tool call is a format
        error to mini, not an answer)."""
        return (tool_call_text("bash", {"command": "echo ok > check.txt && cat check.txt"}),
                tool_call_text("bash", {"command": f"echo {SUBMIT_SENTINEL}"}))

    # -- installation --------------------------------------------------------------------------
    def dockerfile(self) -> str:
        """The layer's Dockerfile lines (expects the wheels and their lock in ``wheels/`` of the
        build context): an offline, hash-checked install of exactly the lock."""
        return (
            "COPY wheels/ /tmp/agentgym-wheels/\n"
            f"RUN python3 -m venv {VENV} \\\n"
            f" && {VENV}/bin/pip install --no-index --find-links /tmp/agentgym-wheels --no-cache-dir "
            f"--disable-pip-version-check --quiet --require-hashes --no-deps -r /tmp/agentgym-wheels/{LOCK_NAME} \\\n"
            f" && ln -s \"$(echo {VENV}/lib/python3*/site-packages/minisweagent/config)\" {VENV}/config \\\n"
            f" && test -f {CONTAINER_CONFIG} \\\n"
            " && rm -rf /tmp/agentgym-wheels \\\n"
            f" && {VENV}/bin/mini --help >/dev/null\n"
        )

    def image_layer(self) -> ImageLayer:
        """Downloads the lock's wheels on first use (blocking, about 1.5 minutes and 160 MB)."""
        wheels = ensure_wheelhouse(lock=self.lock, python_version=self.python_version)
        dockerfile = self.dockerfile()
        key = hashlib.sha256((dockerfile + wheels.name).encode()).hexdigest()[:16]
        return ImageLayer(dockerfile=dockerfile, context_files={"wheels": str(wheels)}, cache_key=f"mini-{key}")

    # -- launch --------------------------------------------------------------------------------
    def config_specs(self, ctx: HarnessContext) -> list[str]:
        """The ``-c key=value`` specs after the base ``mini.yaml``."""
        specs: dict[str, Any] = {
            "agent.step_limit": ctx.max_steps,
            "agent.cost_limit": 0,
            "model.set_cache_control": None,  # mini turns it on for names containing "claude"
            "environment.timeout": self.command_timeout,
        }
        for key in ("temperature", "max_tokens", "seed"):
            value = getattr(self, key)
            if value is not None:
                specs[f"model.model_kwargs.{key}"] = value
        specs.update(self.extra_config)
        # mini parses each value as JSON when it can, else keeps the string.
        return [f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in specs.items()]

    def launch(self, ctx: HarnessContext, runtime: Runtime | None) -> Launch:
        if runtime is not None and not runtime.uses_images:  # no image layer: the host venv
            mini, config, python = _host_mini(self.lock)
        else:
            mini, config, python = f"{VENV}/bin/mini", CONTAINER_CONFIG, f"{VENV}/bin/python"
        out_dir = runtime.process_path(ctx.output_dir) if runtime is not None else ctx.output_dir
        env = {
            "MSWEA_CONFIGURED": "true",
            "MSWEA_COST_TRACKING": "ignore_errors",
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "OPENAI_API_KEY": ctx.api_key,
            "OPENAI_BASE_URL": ctx.base_url,
            "MSWEA_MODEL_NAME": f"openai/{ctx.model}",
            "MSWEA_GLOBAL_CONFIG_DIR": f"{out_dir}/mini-config",
            "AGENTGYM_TASK": ctx.task.instruction,
            "AGENTGYM_OUTPUT_DIR": out_dir,
            "AGENTGYM_MINI": mini,
            "AGENTGYM_MINI_CONFIG": config,
            "AGENTGYM_MINI_TRAJ": f"{out_dir}/{TRAJ_NAME}",
            "AGENTGYM_PYTHON": python,
            "PYTHONUNBUFFERED": "1",
        }
        if self.retry_attempts is not None:
            env["MSWEA_MODEL_RETRY_STOP_AFTER_ATTEMPT"] = str(self.retry_attempts)
        specs = " ".join(f"-c {shlex.quote(s)}" for s in self.config_specs(ctx))
        cmd = (
            'mkdir -p "$AGENTGYM_OUTPUT_DIR" && '
            f'"$AGENTGYM_MINI" -y --exit-immediately -c "$AGENTGYM_MINI_CONFIG" {specs} '
            '-t "$AGENTGYM_TASK" -o "$AGENTGYM_MINI_TRAJ" </dev/null; '
            'rc=$?; [ "$rc" -ne 0 ] && exit "$rc"; '
            f'exec "$AGENTGYM_PYTHON" -c {shlex.quote(_EXIT_MAPPER)}'
        )
        return Launch(cmd=cmd, env=env)
