"""``aider/aider-v0``: Aider (``aider-chat`` 0.86.2 from PyPI), unmodified, one message per run.

Installation
------------
From one lock, ``harnesses/locks/aider.txt`` (the whole closure at exact versions with sha256
hashes; aider pins its own dependencies exactly, and the lock pins litellm and the OpenAI SDK,
which decide the bytes on the wire): into a venv at ``/opt/aider`` in the task image from a local
wheelhouse, offline and hash-checked, or into a cached host virtualenv for the local runtime,
as for mini-swe-agent (:mod:`agentgym.harnesses.wheelhouse`). Installed: about 690 MB (numpy,
scipy, tree-sitter grammars, litellm); wheels: about 120 MB.

Launch
------
Environment ``OPENAI_API_BASE=<session base url> OPENAI_API_KEY=<key>
LITELLM_LOCAL_MODEL_COST_MAP=True``, ``HOME`` inside the output directory, then, in the task's
working directory::

    aider --model openai/<model> --model-metadata-file <out>/model-metadata.json \\
          --yes-always --no-git --no-check-update --analytics-disable --no-show-model-warnings \\
          --no-pretty --no-fancy-input [--no-stream] [--edit-format F] \\
          --chat-history-file <out>/... --input-history-file <out>/... --llm-history-file <out>/... \\
          --message "$AGENTGYM_TASK" </dev/null

Quirks (recorded on the wire: ``tests/fixtures/wire/aider_*.json``)
---------------------------------------------------------------------
- ``POST {OPENAI_API_BASE}/chat/completions`` through litellm -> the OpenAI SDK 2.20
  (``User-Agent: OpenAI/Python 2.20.0``). **Streams by default** (``"stream": true``, no
  ``stream_options``); ``stream=False`` passes ``--no-stream``. Body keys: ``model`` (without the
  ``openai/`` prefix), ``messages``, ``temperature: 0``, and ``stream`` when streaming. **No
  tools**: edits are SEARCH/REPLACE blocks (``diff``) or whole files (``whole``, aider's choice
  for a model it does not know, which the policy is) in plain text.
- Messages: a long ``system`` prompt for the edit format, then few-shot ``user``/``assistant``
  example turns, then ``user``/``assistant`` turns describing the files in the chat (none at
  first: it runs in the task's directory with ``--no-git``, so no repo map), then the task.
- One run is one ``--message``: aider answers, applies the edits, and exits 0. It calls again
  only to *reflect*: an edit block that does not apply, a lint error after an edit (flake8 on
  Python files; ``--yes-always`` accepts the fix), or a reply that names files not in the chat
  (it adds them, then asks again) — at most 3 reflections. So a run is 1 to 4 calls, and the
  step limit (``HarnessContext.max_steps``) does not apply.
- It never runs shell commands: the ones a reply suggests need an explicit yes, which
  ``--yes-always`` does not give.
- A reflection **rewrites the history**: the task message loses its format reminder, the reply
  is echoed without its final newline, the "I am not sharing any files" turn is replaced by the
  edited files' contents after an "I updated the files." turn. So each reflection starts a new
  segment (``history_edited``); a run without reflections is one segment.
- The lint reflection names the linter's command line, with the venv's path in it.
- Without ``--model-metadata-file`` naming the policy it fetches litellm's price list from
  GitHub at start (and prints a connection error in a sandbox); the launch writes that file.
- Chat and input history files go to the output directory, not the task's working directory
  (by default aider writes ``.aider.chat.history.md`` there, which a verifier would see).
- API errors: litellm maps them; retryable ones (5xx, 429, connection errors) are retried with
  backoff doubling from 0.25 s until 60 s, then aider reports the error and exits **0**; a 4xx is
  reported at once and aider also exits 0. The launch command reads aider's LLM history file
  (``--llm-history-file``) and exits 1 when no request was made, 4 when the last request got no
  answer.

>>> from agentgym.types import Task
>>> from agentgym.harness import HarnessContext
>>> ctx = HarnessContext(task=Task(id="t", instruction="fix it", env="demo/x-v0"),
...                      base_url="http://127.0.0.1:8000/s/abc/v1", model="policy")
>>> launch = AiderHarness(stream=False).launch(ctx, runtime=None)
>>> launch.env["OPENAI_API_BASE"], "--no-stream" in launch.cmd, "--yes-always" in launch.cmd
('http://127.0.0.1:8000/s/abc/v1', True, True)
"""

from __future__ import annotations

import hashlib
import json
import shlex
from collections.abc import Sequence
from typing import ClassVar

from agentgym.errors import HarnessError
from agentgym.harness import Harness, HarnessContext, ImageLayer, Launch
from agentgym.harnesses.locks import HarnessLock, harness_lock
from agentgym.harnesses.wheelhouse import LOCK_NAME, ensure_venv, ensure_wheelhouse
from agentgym.runtime.base import Runtime

LOCK: HarnessLock = harness_lock("aider")
VERSION = LOCK.pinned("aider-chat")
VENV = "/opt/aider"
API_FAILED_EXIT_CODE = 4
LLM_HISTORY = "aider.llm.history"

# aider exits 0 even when the API failed; its LLM history says whether the last request was
# answered: each request is a "TO LLM <time>" block, each answer an "LLM RESPONSE <time>" block
# whose lines start with "ASSISTANT " (empty when the call failed). Double quotes only.
_EXIT_MAPPER = (
    'import os, sys\n'
    'try:\n'
    '    log = "\\n" + open(os.environ["AGENTGYM_AIDER_LLM_HISTORY"]).read()\n'
    'except OSError:\n'
    '    log = ""\n'
    'asked, answered = log.rfind("\\nTO LLM "), log.rfind("\\nLLM RESPONSE ")\n'
    'if asked < 0:\n'
    '    sys.exit("agentgym: aider made no request")\n'
    'body = log[answered + 1:].partition("\\n")[2] if answered > asked else ""\n'
    'if not body.strip():\n'
    f'    print("agentgym: aider got no answer to its last request", file=sys.stderr); sys.exit({API_FAILED_EXIT_CODE})\n'
)


def _host_aider(lock: HarnessLock = LOCK) -> tuple[str, str]:
    """(``aider`` executable, the venv's python) of the locked host virtualenv."""
    venv = ensure_venv(lock)
    aider = venv / "bin" / "aider"
    if not aider.is_file():
        raise HarnessError(f"the aider virtualenv at {venv} has no `aider`; delete it and run again")
    return str(aider), str(venv / "bin" / "python")


class AiderHarness(Harness):
    """Aider's CLI, one ``--message`` per episode, against the proxy session.

    Args:
        stream: ``False`` passes ``--no-stream`` (aider streams by default).
        edit_format: ``--edit-format`` (``diff``, ``whole``, ``udiff``...; ``None``: aider's
            choice, ``whole`` for a model it does not know).
        context_window, max_output_tokens: what the model metadata file tells aider about the
            policy (it trims history to fit).
        extra_args: more aider arguments, appended.
        python_version: the image's ``python3`` version the wheels are downloaded for.
    """

    id: ClassVar[str] = "aider/aider-v0"
    dialects: ClassVar[tuple[str, ...]] = ("openai",)
    streams: ClassVar[bool] = True
    uses_tools: ClassVar[bool] = False
    version: ClassVar[str] = VERSION
    install_mb: ClassVar[float | None] = 687
    """``du -sm`` of the locked host virtualenv (Python 3.11)."""
    step_limit_exit_codes: ClassVar[tuple[int, ...]] = ()

    def __init__(self, *, stream: bool = True, edit_format: str | None = None, context_window: int = 32768,
                 max_output_tokens: int = 4096, extra_args: Sequence[str] = (), lock: HarnessLock = LOCK,
                 python_version: str = "3.11") -> None:
        self.stream = stream
        self.edit_format = edit_format
        self.context_window = context_window
        self.max_output_tokens = max_output_tokens
        self.extra_args = list(extra_args)
        self.lock = lock
        self.python_version = python_version

    def check_replies(self) -> Sequence[str]:
        return ("check.txt\n```\nok\n```\n",)  # aider's `whole` edit format: the file's new content

    # -- installation --------------------------------------------------------------------------
    def dockerfile(self) -> str:
        return (
            "COPY wheels/ /tmp/agentgym-wheels/\n"
            f"RUN python3 -m venv {VENV} \\\n"
            f" && {VENV}/bin/pip install --no-index --find-links /tmp/agentgym-wheels --no-cache-dir "
            f"--disable-pip-version-check --quiet --require-hashes --no-deps -r /tmp/agentgym-wheels/{LOCK_NAME} \\\n"
            " && rm -rf /tmp/agentgym-wheels \\\n"
            f" && {VENV}/bin/aider --version\n"
        )

    def image_layer(self) -> ImageLayer:
        """Downloads the lock's wheels on first use (about 120 MB)."""
        wheels = ensure_wheelhouse(lock=self.lock, python_version=self.python_version)
        dockerfile = self.dockerfile()
        key = hashlib.sha256((dockerfile + wheels.name).encode()).hexdigest()[:16]
        return ImageLayer(dockerfile=dockerfile, context_files={"wheels": str(wheels)}, cache_key=f"aider-{key}")

    # -- launch --------------------------------------------------------------------------------
    def metadata(self, model: str) -> str:
        """The ``--model-metadata-file`` content: the policy's limits, no price, no lookup."""
        return json.dumps({f"openai/{model}": {
            "max_input_tokens": self.context_window, "max_tokens": self.max_output_tokens,
            "max_output_tokens": self.max_output_tokens, "input_cost_per_token": 0.0,
            "output_cost_per_token": 0.0, "litellm_provider": "openai", "mode": "chat"}})

    def launch(self, ctx: HarnessContext, runtime: Runtime | None) -> Launch:
        if runtime is not None and not runtime.uses_images:
            aider, python = _host_aider(self.lock)
        else:
            aider, python = f"{VENV}/bin/aider", f"{VENV}/bin/python"
        out = runtime.process_path(ctx.output_dir) if runtime is not None else ctx.output_dir
        env = {
            "OPENAI_API_BASE": ctx.base_url,
            "OPENAI_API_KEY": ctx.api_key,
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "HOME": f"{out}/home",
            "TERM": "dumb",
            "AGENTGYM_TASK": ctx.task.instruction,
            "AGENTGYM_OUTPUT_DIR": out,
            "AGENTGYM_AIDER": aider,
            "AGENTGYM_PYTHON": python,
            "AGENTGYM_AIDER_METADATA": self.metadata(ctx.model),
            "AGENTGYM_AIDER_LLM_HISTORY": f"{out}/{LLM_HISTORY}",
            "PYTHONUNBUFFERED": "1",
        }
        args = ["--model", f"openai/{ctx.model}", "--yes-always", "--no-git", "--no-check-update",
                "--analytics-disable", "--no-show-model-warnings", "--no-pretty", "--no-fancy-input",
                "--no-restore-chat-history"]
        if not self.stream:
            args.append("--no-stream")
        if self.edit_format:
            args += ["--edit-format", self.edit_format]
        args += self.extra_args
        cmd = (
            'mkdir -p "$HOME" && printf %s "$AGENTGYM_AIDER_METADATA" > "$AGENTGYM_OUTPUT_DIR/model-metadata.json" && '
            f'"$AGENTGYM_AIDER" {shlex.join(args)} --model-metadata-file "$AGENTGYM_OUTPUT_DIR/model-metadata.json" '
            '--chat-history-file "$AGENTGYM_OUTPUT_DIR/aider.chat.history.md" '
            '--input-history-file "$AGENTGYM_OUTPUT_DIR/aider.input.history" '
            '--llm-history-file "$AGENTGYM_AIDER_LLM_HISTORY" '
            '--message "$AGENTGYM_TASK" </dev/null; '
            'rc=$?; [ "$rc" -ne 0 ] && exit "$rc"; '
            f'exec "$AGENTGYM_PYTHON" -c {shlex.quote(_EXIT_MAPPER)}'
        )
        return Launch(cmd=cmd, env=env)
