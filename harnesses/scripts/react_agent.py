#!/usr/bin/env python3
"""agentgym's own ReAct shell agent: one file, standard library only.

It runs inside the task's container with whatever ``python3`` (3.8+) the image has, talks to an
OpenAI-compatible ``/chat/completions`` endpoint (non-streaming) and offers the model one tool,
``bash(command)``. Each step is one model call:

* the reply has ``tool_calls``: each command runs in a fresh ``bash -c`` (per-command timeout,
  stdout+stderr merged, output truncated in the middle), and its result goes back as a ``tool``
  message with the matching ``tool_call_id``. The assistant message is appended to the history
  exactly as received, so every request extends the previous one (a token prefix for the proxy).
* a command exits 0 and the first line of its output is the submit sentinel (default
  ``COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT``, as in mini-swe-agent): the episode ends after the
  reply's remaining tool calls have run, exit status 0.
* the reply has no tool call: it is the final answer (exit 0), unless it looks like a failed
  attempt at one (a ```` ```bash ```` block, ``<tool_call>``, a ``"command"`` key) or was cut
  off (``finish_reason: length``); then it stays in the history, a user message asks for a
  proper tool call, and the loop goes on (the step counts).
* ``--max-steps`` model calls without finishing: exit status 3 and a ``step limit`` line on stderr.

Exit statuses: 0 finished, 2 bad usage, 3 step limit, 4 the API refused a request (4xx, body
printed) or answered nonsense, 5 the API stayed unreachable or kept failing (5xx, 429,
connection errors) after retries with exponential backoff.

The API key comes from ``OPENAI_API_KEY``; the task from ``--task``, ``--task-file`` or the
``AGENTGYM_TASK`` environment variable; a replacement system prompt from
``--system-prompt-file`` or ``AGENTGYM_SYSTEM_PROMPT``. ``--log`` writes a JSON record of the episode (rewritten
after every step, so a killed run leaves a log).

Example::

    OPENAI_API_KEY=x python3 react_agent.py --base-url http://127.0.0.1:8000/s/abc/v1 \\
        --model policy --task "Create hello.txt containing hi" --max-steps 10 --log /tmp/ep.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_STEP_LIMIT = 3
EXIT_API_REFUSED = 4
EXIT_API_UNAVAILABLE = 5

SUBMIT_SENTINEL = "COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT"

BASH_TOOL = {
    "type": "function",
    "function": {
        "name": "bash",
        "description": "Run a bash command in the task's environment and return its exit code and output.",
        "parameters": {
            "type": "object",
            "properties": {"command": {"type": "string", "description": "The bash command to run."}},
            "required": ["command"],
        },
    },
}

SYSTEM_PROMPT = """You are an autonomous agent that solves tasks in a Linux shell.
Use the `bash` tool to run commands; each call runs in a fresh shell (cd and variables do not
persist), and you see its exit code and output. Work step by step: inspect, act, verify.
When the task is done, run `echo {sentinel}` on its own, or reply with a short final answer
and no tool call."""

NUDGE = (
    "Your last reply contained no valid tool call. To run a command, call the `bash` tool with "
    'arguments {{"command": "..."}}. When you are done, run `echo {sentinel}` or reply with your '
    "final answer and no tool call."
)

CUT_OFF = "Your last reply was cut off at the output token limit. Be more concise. "

# A reply without tool calls that matches this tried to call a tool in text (wrong format).
ATTEMPT_RE = re.compile(r"```(?:bash|sh|shell)\b|<tool_call>|<function[=>]|\"command\"\s*:|\bbash\s*\(", re.I)

RETRY_STATUSES = (408, 409, 425, 429, 500, 502, 503, 504)


class ApiError(Exception):
    """The model API failed; ``exit_code`` says how (refused vs unavailable)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="ReAct shell agent (stdlib only).")
    p.add_argument("--base-url", required=True, help="OpenAI-compatible base URL ending in /v1")
    p.add_argument("--model", required=True)
    p.add_argument("--task", help="the task instruction (default: $AGENTGYM_TASK)")
    p.add_argument("--task-file", help="read the task instruction from this file")
    p.add_argument("--max-steps", type=int, default=30, help="model calls before giving up (exit 3)")
    p.add_argument("--temperature", type=float, default=None)
    p.add_argument("--max-tokens", type=int, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--command-timeout", type=float, default=60.0, help="seconds per command")
    p.add_argument("--max-output-chars", type=int, default=10000, help="truncate command output")
    p.add_argument("--request-timeout", type=float, default=600.0, help="seconds per HTTP request")
    p.add_argument("--retries", type=int, default=5, help="retries on 5xx/429/connection errors")
    p.add_argument("--retry-backoff", type=float, default=1.0, help="first retry delay, doubled each time")
    p.add_argument("--sentinel", default=SUBMIT_SENTINEL, help="output first line that ends the episode")
    p.add_argument("--system-prompt-file", help="replace the built-in system prompt (or set $AGENTGYM_SYSTEM_PROMPT)")
    p.add_argument("--workdir", help="directory commands run in (default: current directory)")
    p.add_argument("--log", help="write a JSON record of the episode here")
    args = p.parse_args(argv)
    if args.max_steps < 1:
        p.error("--max-steps must be at least 1")
    return args


def read_task(args: argparse.Namespace) -> str | None:
    """The task from ``--task``, ``--task-file`` or ``$AGENTGYM_TASK`` (None when none is given)."""
    if args.task is not None:
        return str(args.task)
    if args.task_file:
        with open(args.task_file, encoding="utf-8") as f:
            return f.read()
    return os.environ.get("AGENTGYM_TASK")


# -- the model API ---------------------------------------------------------------------------------
def post_json(url: str, body: dict, api_key: str, timeout: float, extra_headers: dict | None = None) -> dict:
    """One POST; returns the decoded JSON or raises ``urllib.error`` / ``ApiError``."""
    data = json.dumps(body).encode("utf-8")
    headers = {"Content-Type": "application/json", "Accept": "application/json", **(extra_headers or {})}
    if api_key:
        headers["Authorization"] = "Bearer " + api_key
    req = urllib.request.Request(url, data=data, headers=headers, method="POST")
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        raw = resp.read()
    try:
        out = json.loads(raw.decode("utf-8"))
    except ValueError as e:
        raise ApiError(f"response is not JSON: {raw[:500]!r}", EXIT_API_REFUSED) from e
    if not isinstance(out, dict):
        raise ApiError(f"response is not a JSON object: {raw[:500]!r}", EXIT_API_REFUSED)
    return out


def chat(url: str, body: dict, api_key: str, timeout: float, retries: int, backoff: float,
         extra_headers: dict | None = None) -> tuple[dict, str]:
    """POST with retries on transient failures; returns the first choice's ``message`` and
    ``finish_reason``."""
    attempt = 0
    while True:
        try:
            out = post_json(url, body, api_key, timeout, extra_headers)
            break
        except urllib.error.HTTPError as e:
            detail = e.read().decode("utf-8", "replace")
            if e.code not in RETRY_STATUSES:
                raise ApiError(f"HTTP {e.code} from {url}: {detail}", EXIT_API_REFUSED) from e
            why = f"HTTP {e.code}: {detail[:200]}"
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as e:
            why = f"{type(e).__name__}: {getattr(e, 'reason', e)}"
        if attempt >= retries:
            raise ApiError(f"giving up on {url} after {attempt + 1} attempts: {why}", EXIT_API_UNAVAILABLE)
        delay = backoff * (2**attempt)
        print(f"react_agent: {why}; retrying in {delay:.1f}s", file=sys.stderr, flush=True)
        time.sleep(delay)
        attempt += 1
    try:
        message = out["choices"][0]["message"]
    except (KeyError, IndexError, TypeError) as e:
        raise ApiError(f"response has no choices[0].message: {json.dumps(out)[:500]}", EXIT_API_REFUSED) from e
    if not isinstance(message, dict):
        raise ApiError(f"choices[0].message is not an object: {message!r}", EXIT_API_REFUSED)
    return message, str(out["choices"][0].get("finish_reason") or "")


# -- running commands ------------------------------------------------------------------------------
def truncate(text: str, limit: int) -> str:
    """Keep the head and tail of ``text`` within ``limit`` characters."""
    if limit <= 0 or len(text) <= limit:
        return text
    head = limit // 2
    tail = limit - head
    return f"{text[:head]}\n[... {len(text) - limit} characters elided ...]\n{text[-tail:]}"


def run_command(command: str, timeout: float, cwd: str | None) -> tuple[int, str, bool]:
    """Run ``command`` with ``bash -c`` in its own process group; returns (exit code, output, timed out)."""
    proc = subprocess.Popen(
        ["bash", "-c", command], cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
        return proc.returncode, out.decode("utf-8", "replace"), False
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            proc.kill()
        out, _ = proc.communicate()
        return -9, out.decode("utf-8", "replace"), True


def observation(exit_code: int, output: str, timed_out: bool, timeout: float, limit: int) -> str:
    head = f"exit code: {exit_code}"
    if timed_out:
        head = f"command timed out after {timeout:g}s and was killed; exit code: {exit_code}"
    return f"{head}\noutput:\n{truncate(output, limit)}"


def parse_command(tool_call: dict) -> tuple[str | None, str]:
    """(command, error): the ``bash`` command of a tool call, or why there is none."""
    fn = tool_call.get("function") or {}
    name = fn.get("name")
    if name != "bash":
        return None, f"unknown tool {name!r}: the only tool is `bash`"
    raw = fn.get("arguments")
    try:
        args = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError as e:
        return None, f"tool arguments are not valid JSON ({e}): {raw!r}"
    if not isinstance(args, dict) or not isinstance(args.get("command"), str):
        return None, f'tool arguments must be an object with a string "command": {raw!r}'
    return args["command"], ""


# -- the episode -----------------------------------------------------------------------------------
class Episode:
    def __init__(self, args: argparse.Namespace, task: str) -> None:
        self.args = args
        self.url = args.base_url.rstrip("/") + "/chat/completions"
        self.api_key = os.environ.get("OPENAI_API_KEY", "")
        system = SYSTEM_PROMPT.format(sentinel=args.sentinel)
        if args.system_prompt_file:
            with open(args.system_prompt_file, encoding="utf-8") as f:
                system = f.read()
        elif os.environ.get("AGENTGYM_SYSTEM_PROMPT"):
            system = os.environ["AGENTGYM_SYSTEM_PROMPT"]
        self.messages: list[dict] = [{"role": "system", "content": system}, {"role": "user", "content": task}]
        self.steps: list[dict] = []
        self.started = time.time()
        self.record = {"model": args.model, "base_url": args.base_url, "task": task, "max_steps": args.max_steps,
                       "exit_code": None, "exit_reason": None, "error": None}

    def request_body(self) -> dict:
        body = {"model": self.args.model, "messages": self.messages, "tools": [BASH_TOOL]}
        for key in ("temperature", "max_tokens", "seed"):
            value = getattr(self.args, key)
            if value is not None:
                body[key] = value
        return body

    def save(self) -> None:
        if not self.args.log:
            return
        data = dict(self.record, messages=self.messages, steps=self.steps,
                    elapsed_s=round(time.time() - self.started, 3))
        directory = os.path.dirname(os.path.abspath(self.args.log))
        os.makedirs(directory, exist_ok=True)
        tmp = self.args.log + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1)
        os.replace(tmp, self.args.log)

    def finish(self, code: int, reason: str, error: str | None = None) -> int:
        self.record.update(exit_code=code, exit_reason=reason, error=error)
        self.save()
        return code

    def run(self) -> int:
        a = self.args
        for step in range(a.max_steps):
            try:
                message, finish_reason = chat(self.url, self.request_body(), self.api_key, a.request_timeout, a.retries,
                               a.retry_backoff)
            except ApiError as e:
                print(f"react_agent: {e}", file=sys.stderr, flush=True)
                return self.finish(e.exit_code, "api_error", str(e))
            self.messages.append(message)  # exactly as received
            tool_calls = message.get("tool_calls") or []
            content = message.get("content") or ""
            record: dict = {"step": step, "finish_reason": finish_reason, "commands": []}
            self.steps.append(record)
            if not tool_calls:
                cut_off = finish_reason == "length"
                if cut_off or (isinstance(content, str) and ATTEMPT_RE.search(content)):
                    record["format_error"] = True
                    nudge = (CUT_OFF if cut_off else "") + NUDGE.format(sentinel=a.sentinel)
                    self.messages.append({"role": "user", "content": nudge})
                    self.save()
                    continue
                record["final_answer"] = content
                return self.finish(EXIT_OK, "final_answer")
            submitted = False
            for call in tool_calls:
                command, error = parse_command(call)
                if command is None:
                    result = "error: " + error
                    record["commands"].append({"tool_call_id": call.get("id"), "error": error})
                else:
                    t0 = time.time()
                    code, output, timed_out = run_command(command, a.command_timeout, a.workdir)
                    result = observation(code, output, timed_out, a.command_timeout, a.max_output_chars)
                    record["commands"].append({"tool_call_id": call.get("id"), "command": command, "exit_code": code,
                                               "timed_out": timed_out, "duration_s": round(time.time() - t0, 3)})
                    lines = output.lstrip().splitlines()
                    submitted = submitted or (code == 0 and bool(lines) and lines[0].strip() == a.sentinel)
                self.messages.append({"role": "tool", "tool_call_id": call.get("id", ""), "content": result})
            self.save()
            if submitted:
                return self.finish(EXIT_OK, "submitted")
        print(f"react_agent: step limit reached ({a.max_steps} model calls) without finishing",
              file=sys.stderr, flush=True)
        return self.finish(EXIT_STEP_LIMIT, "step_limit")


def cli_main(name: str, parse: Callable[[list[str] | None], argparse.Namespace], episode: Callable[..., Any],
             argv: list[str] | None = None) -> int:
    """A script's entry point: parse the arguments, read the task, run ``episode(args, task)``."""
    args = parse(argv)
    try:
        task = read_task(args)
    except OSError as e:
        print(f"{name}: cannot read the task: {e}", file=sys.stderr)
        return EXIT_USAGE
    if task is None:
        print(f"{name}: no task given (use --task, --task-file or $AGENTGYM_TASK)", file=sys.stderr)
        return EXIT_USAGE
    return episode(args, task).run()


def main(argv: list[str] | None = None) -> int:
    return cli_main("react_agent", parse_args, Episode, argv)


if __name__ == "__main__":
    sys.exit(main())
