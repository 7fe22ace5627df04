#!/usr/bin/env python3
"""agentgym's planner/worker agent: a planner that delegates sub-tasks to worker sub-agents.

Standard library only, like ``react_agent.py`` beside it, whose helpers it imports (HTTP with
retries, running commands, formatting their output): the two files travel together. It talks to
an OpenAI-compatible ``/chat/completions`` endpoint (non-streaming).

**Agents.** One process, several call chains, each with its own system prompt and its own base
URL, so the proxy records one trajectory per agent:

* the *planner* (the main agent) uses the base URL it is given (``.../s/<sid>/v1``) and names
  itself with the header ``X-AgentGym-Agent: main``, so it is the main agent even when workers
  call first (``--split lines``);
* worker number ``n`` (1, 2, ...) is a sub-agent, agent id ``sub-<n>``, served at
  ``.../s/<sid>/a/sub-<n>/v1``: the base URL's trailing ``/v1`` replaced by ``/a/sub-<n>/v1``
  (agentgym's sub-agent route). Every delegation starts a new worker with a fresh history.

Workers run one at a time, in the order the planner asked for them; nothing depends on time or
randomness, so the same model replies give the same requests (an episode can be replayed).

**The planner's tools.**

* ``delegate(task)``: start a new worker on ``task`` (self-contained: the worker sees only this
  text) and wait for it. The tool result starts with ``report from sub-<n>`` and gives the
  worker's report (``finished after K steps``), or says it stopped at its step limit without one.
  Past ``--max-delegations`` workers per episode it answers ``error: no delegation left``.
* ``bash(command)`` (``--planner-tools bash``, the default): run a command to verify the work,
  exactly like the ReAct agent's tool (``exit code: N\\noutput:\\n...``).
* ``inspect(path)`` (``--planner-tools inspect`` instead of ``bash``): list a directory or show a
  file (``inspect <path>\\noutput:\\n...``); it changes nothing, so every change to the workspace
  is a worker's (a task the planner *must* delegate).

A planner reply without a tool call is its final answer (exit 0), unless it looks like a failed
attempt at a tool call or was cut off: then a user message asks for a proper tool call and the
loop goes on (the step counts).

**Workers.** A worker has one tool, ``bash(command)``; its first user message is
``You are worker sub-<n>. Sub-task from the planner:\\n<task>``. A reply without a tool call is its
report (malformed attempts and cut-off replies are nudged, as for the planner); ``--worker-max-steps``
model calls without a report end it with a "stopped at its step limit" result for the planner.
A worker's step limit is not the planner's failure.

**Splitting.** ``--split model`` (the default): the planner decides what to delegate.
``--split lines``: before the planner's first call, every list item of the task (a line starting
with ``-``, ``*`` or ``1.``/``1)``) is delegated to its own worker, whose sub-task is the task with
its list reduced to that one item; the planner's first message is the task followed by the
workers' reports, and it goes on from there (verifying, delegating fixes, finishing). A task
without list items is left to the planner; items beyond ``--max-delegations`` are not delegated
(the first message says so).

**Stop rules and exit statuses:** 0 the planner gave its final answer, 2 bad usage, 3 the planner
made ``--max-steps`` model calls without finishing, 4 the API refused a request (4xx) or answered
nonsense, 5 the API stayed unreachable after retries (from the planner's or a worker's call).

The task comes from ``--task``, ``--task-file`` or ``$AGENTGYM_TASK``; the API key from
``OPENAI_API_KEY``. ``--log`` writes a JSON record of the episode (planner and every worker),
rewritten after every step.

Example::

    OPENAI_API_KEY=x python3 planner_agent.py --base-url http://127.0.0.1:8000/s/abc/v1 \\
        --model policy --task "Create a.txt and b.txt" --max-steps 6 --worker-max-steps 4 --log /tmp/ep.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import react_agent as react  # the sibling script, installed next to this one

EXIT_OK = react.EXIT_OK
EXIT_USAGE = react.EXIT_USAGE
EXIT_STEP_LIMIT = react.EXIT_STEP_LIMIT
EXIT_API_REFUSED = react.EXIT_API_REFUSED
EXIT_API_UNAVAILABLE = react.EXIT_API_UNAVAILABLE

MAIN_AGENT = "main"
AGENT_HEADER = "X-AgentGym-Agent"
"""The planner names itself in this header (workers are named by their route)."""
WORKER_PREFIX = "sub-"
"""Worker ``n``'s agent id is ``sub-<n>`` (ids the proxy accepts in a URL path and journal names)."""
REPORT_PREFIX = "report from "
"""Every ``delegate`` result starts with this (the worker wrote what follows, not the environment)."""
ERROR_PREFIX = "error: "
OUTPUT_MARKER = "\noutput:\n"

DELEGATE_TOOL: dict = {
    "type": "function",
    "function": {
        "name": "delegate",
        "description": "Hand a sub-task to a new worker that has a shell. The worker sees only this text, "
                       "does the sub-task and reports back; the report is returned.",
        "parameters": {
            "type": "object",
            "properties": {"task": {"type": "string", "description": "The sub-task, self-contained."}},
            "required": ["task"],
        },
    },
}
INSPECT_TOOL: dict = {
    "type": "function",
    "function": {
        "name": "inspect",
        "description": "List a directory or show a file (read only: it changes nothing).",
        "parameters": {
            "type": "object",
            "properties": {"path": {"type": "string", "description": "A directory or file path."}},
            "required": ["path"],
        },
    },
}

PLANNER_PROMPT = """You are the planner of a team that solves tasks in a Linux shell.
Split the task into independent sub-tasks and hand each one to a worker with the `delegate` tool
(one sub-task per call; the worker sees only your text, so make it self-contained). Each worker
has a shell, does its sub-task and reports back.
{verify}
If something is missing, delegate a fix. When the task is done, reply with a short final answer
and no tool call."""
VERIFY_BASH = ("Check the result with the `bash` tool (each call runs in a fresh shell; you see the exit "
               "code and output).")
VERIFY_INSPECT = ("Check the result with the `inspect` tool, which lists a directory or shows a file; you "
                  "cannot change anything yourself.")

WORKER_PROMPT = """You are worker {agent} in a team that solves tasks in a Linux shell. The planner gave you
one sub-task. Use the `bash` tool to run commands; each call runs in a fresh shell (cd and
variables do not persist), and you see its exit code and output. Do the sub-task and check it,
then reply with a short report of what you did and no tool call."""

WORKER_TASK = "Sub-task from the planner:\n{task}"
SPLIT_INTRO = ("\n\nEach of the {n} listed requirements was delegated to its own worker. Their reports:\n\n"
               "{reports}")
SPLIT_PARTIAL = ("\n\nThe first {n} of the {total} listed requirements were delegated, one worker each (the "
                 "delegation limit). Their reports:\n\n{reports}")

PLANNER_NUDGE = ("Your last reply contained no valid tool call. To use a tool, call one of {tools} with JSON "
                 "arguments. When the task is done, reply with your final answer and no tool call.")
WORKER_NUDGE = ('Your last reply contained no valid tool call. To run a command, call the `bash` tool with '
                'arguments {"command": "..."}. When your sub-task is done, reply with your report and no tool call.')

# A reply without tool calls that matches this tried to call a tool in text (wrong format).
ATTEMPT_RE = re.compile(react.ATTEMPT_RE.pattern + r'|"(?:task|path)"\s*:|\b(?:delegate|inspect)\s*\(', re.I)
LIST_ITEM_RE = re.compile(r"^\s*(?:[-*]|\d+[.)])\s+\S")


# -- the task and the URLs -------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Planner agent with worker sub-agents (stdlib only).")
    p.add_argument("--base-url", required=True, help="the session's OpenAI-compatible base URL, ending in /v1")
    p.add_argument("--model", required=True)
    p.add_argument("--task", help="the task instruction (default: $AGENTGYM_TASK)")
    p.add_argument("--task-file", help="read the task instruction from this file")
    p.add_argument("--max-steps", type=int, default=10, help="planner model calls before giving up (exit 3)")
    p.add_argument("--worker-max-steps", type=int, default=6, help="model calls per worker")
    p.add_argument("--max-delegations", type=int, default=4, help="workers per episode")
    p.add_argument("--split", choices=("model", "lines"), default="model",
                   help="model: the planner delegates; lines: one worker per list item first")
    p.add_argument("--planner-tools", choices=("bash", "inspect"), default="bash",
                   help="the planner's verifying tool besides delegate")
    p.add_argument("--temperature", type=float, default=None)
    p.add_argument("--max-tokens", type=int, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--command-timeout", type=float, default=60.0, help="seconds per command")
    p.add_argument("--max-output-chars", type=int, default=10000, help="truncate command output and reports")
    p.add_argument("--request-timeout", type=float, default=600.0, help="seconds per HTTP request")
    p.add_argument("--retries", type=int, default=5, help="retries on 5xx/429/connection errors")
    p.add_argument("--retry-backoff", type=float, default=1.0, help="first retry delay, doubled each time")
    p.add_argument("--workdir", help="directory commands run in (default: current directory)")
    p.add_argument("--log", help="write a JSON record of the episode here")
    args = p.parse_args(argv)
    for name in ("max_steps", "worker_max_steps"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.max_delegations < 0:
        p.error("--max-delegations must be at least 0")
    return args


def agent_base_url(base_url: str, agent: str) -> str:
    """The sub-agent route of a session base URL: ``.../s/<sid>/v1`` -> ``.../s/<sid>/a/<agent>/v1``.

    >>> agent_base_url("http://127.0.0.1:8000/s/abc/v1/", "sub-1")
    'http://127.0.0.1:8000/s/abc/a/sub-1/v1'
    """
    root = base_url.rstrip("/")
    if not root.endswith("/v1"):
        raise ValueError(f"the base URL must end in /v1 to derive sub-agent URLs from it: {base_url!r}")
    return f"{root[:-3]}/a/{agent}/v1"


def split_task(task: str) -> list[str]:
    """One sub-task per list item: the task with its list reduced to that item (``[]`` without items).

    >>> split_task("Do this in /app:\\n- a dir\\n- a file\\nThat is all.")
    ['Do this in /app:\\n- a dir\\nThat is all.', 'Do this in /app:\\n- a file\\nThat is all.']
    """
    lines = task.split("\n")
    items = [i for i, line in enumerate(lines) if LIST_ITEM_RE.match(line)]
    return ["\n".join(line for j, line in enumerate(lines) if j == i or j not in items) for i in items]


# -- tools -----------------------------------------------------------------------------------------
def tool_arguments(tool_call: dict, name: str, key: str) -> tuple[str | None, str]:
    """(value, error): the string argument ``key`` of a call of tool ``name``."""
    raw = (tool_call.get("function") or {}).get("arguments")
    try:
        args = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError as e:
        return None, f"{name} arguments are not valid JSON ({e}): {raw!r}"
    if not isinstance(args, dict) or not isinstance(args.get(key), str):
        return None, f'{name} arguments must be an object with a string "{key}": {raw!r}'
    return args[key], ""


def inspect_path(path: str, cwd: str | None, limit: int) -> str:
    """What ``inspect`` shows: a directory listing (``name/`` for directories, sizes for files) or
    a file's text; reads only."""
    full = path if os.path.isabs(path) or cwd is None else os.path.join(cwd, path)
    try:
        if os.path.isdir(full):
            rows = []
            for name in sorted(os.listdir(full)):
                p = os.path.join(full, name)
                if os.path.isdir(p) and not os.path.islink(p):
                    rows.append(name + "/")
                else:
                    rows.append(f"{name} ({os.path.getsize(p) if os.path.isfile(p) else 0} bytes)")
            body = "\n".join(rows) if rows else "(empty directory)"
        elif os.path.isfile(full):
            with open(full, encoding="utf-8", errors="replace") as f:
                body = f.read(limit + 1)
        else:
            body = "no such file or directory"
    except OSError as e:
        body = f"cannot read it: {e.strerror or e}"
    return f"inspect {path}{OUTPUT_MARKER}{react.truncate(body, limit)}"


# -- the episode -----------------------------------------------------------------------------------
class Agent:
    """One call chain: its URL, system prompt, tools and history."""

    def __init__(self, episode: Episode, agent_id: str, url: str, system: str, tools: list[dict],
                 first_message: str, headers: dict | None = None) -> None:
        self.episode = episode
        self.id = agent_id
        self.url = url.rstrip("/") + "/chat/completions"
        self.headers = headers
        self.tools = tools
        self.messages: list[dict] = [{"role": "system", "content": system}, {"role": "user", "content": first_message}]
        self.steps: list[dict] = []
        self.report: str | None = None
        """A worker's report (its reply without a tool call); ``None`` until it gives one."""

    def call(self) -> tuple[dict, str]:
        a = self.episode.args
        body: dict = {"model": a.model, "messages": self.messages, "tools": self.tools}
        for key in ("temperature", "max_tokens", "seed"):
            value = getattr(a, key)
            if value is not None:
                body[key] = value
        message, finish_reason = react.chat(self.url, body, self.episode.api_key, a.request_timeout, a.retries,
                                            a.retry_backoff, self.headers)
        self.messages.append(message)  # exactly as received: the next request extends this one
        return message, finish_reason

    def needs_nudge(self, message: dict, finish_reason: str) -> bool:
        content = message.get("content") or ""
        return finish_reason == "length" or (isinstance(content, str) and bool(ATTEMPT_RE.search(content)))

    def record(self) -> dict:
        return {"agent": self.id, "messages": self.messages, "steps": self.steps, "report": self.report}


class Episode:
    def __init__(self, args: argparse.Namespace, task: str) -> None:
        self.args = args
        self.task = task
        self.api_key = os.environ.get("OPENAI_API_KEY", "")
        verify = VERIFY_BASH if args.planner_tools == "bash" else VERIFY_INSPECT
        own_tool = react.BASH_TOOL if args.planner_tools == "bash" else INSPECT_TOOL
        self.planner_tools = [DELEGATE_TOOL, own_tool]
        self.planner_prompt = PLANNER_PROMPT.format(verify=verify)
        self.planner: Agent | None = None
        self.workers: list[Agent] = []
        self.started = time.time()
        self.record = {"model": args.model, "base_url": args.base_url, "task": task, "split": args.split,
                       "planner_tools": args.planner_tools, "max_steps": args.max_steps,
                       "worker_max_steps": args.worker_max_steps, "max_delegations": args.max_delegations,
                       "exit_code": None, "exit_reason": None, "error": None}

    # -- bookkeeping -------------------------------------------------------------------------------
    def save(self) -> None:
        if not self.args.log:
            return
        data = dict(self.record, planner=self.planner.record() if self.planner else None,
                    workers=[w.record() for w in self.workers],
                    elapsed_s=round(time.time() - self.started, 3))
        os.makedirs(os.path.dirname(os.path.abspath(self.args.log)), exist_ok=True)
        tmp = self.args.log + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1)
        os.replace(tmp, self.args.log)

    def finish(self, code: int, reason: str, error: str | None = None) -> int:
        self.record.update(exit_code=code, exit_reason=reason, error=error)
        self.save()
        return code

    # -- tools -------------------------------------------------------------------------------------
    def run_bash(self, call: dict, step: dict) -> str:
        a = self.args
        command, error = tool_arguments(call, "bash", "command")
        if command is None:
            step["commands"].append({"tool_call_id": call.get("id"), "error": error})
            return ERROR_PREFIX + error
        t0 = time.time()
        code, output, timed_out = react.run_command(command, a.command_timeout, a.workdir)
        step["commands"].append({"tool_call_id": call.get("id"), "command": command, "exit_code": code,
                                 "timed_out": timed_out, "duration_s": round(time.time() - t0, 3)})
        return react.observation(code, output, timed_out, a.command_timeout, a.max_output_chars)

    def delegate(self, task: str) -> str:
        """Run a new worker on ``task`` to its report or its step limit; the planner's tool result."""
        a = self.args
        if len(self.workers) >= a.max_delegations:
            return (f"{ERROR_PREFIX}no delegation left (the limit is {a.max_delegations} workers per episode); "
                    "check the result and finish")
        agent_id = f"{WORKER_PREFIX}{len(self.workers) + 1}"
        # The worker's id in its system prompt keeps workers' histories apart from the first message on
        # (a proxy that indexes a session's prefixes across agents would otherwise see sub-2's first
        # request as an edit of sub-1's history).
        worker = Agent(self, agent_id, agent_base_url(a.base_url, agent_id), WORKER_PROMPT.format(agent=agent_id),
                       [react.BASH_TOOL], WORKER_TASK.format(task=task))
        self.workers.append(worker)
        for n in range(a.worker_max_steps):
            message, finish_reason = worker.call()
            tool_calls = message.get("tool_calls") or []
            step: dict = {"step": n, "finish_reason": finish_reason, "commands": []}
            worker.steps.append(step)
            if not tool_calls:
                if worker.needs_nudge(message, finish_reason):
                    step["format_error"] = True
                    cut = react.CUT_OFF if finish_reason == "length" else ""
                    worker.messages.append({"role": "user", "content": cut + WORKER_NUDGE})
                    self.save()
                    continue
                worker.report = str(message.get("content") or "")
                self.save()
                return (f"{REPORT_PREFIX}{agent_id} (finished after {n + 1} steps):\n"
                        f"{react.truncate(worker.report, a.max_output_chars)}")
            for call in tool_calls:
                name = (call.get("function") or {}).get("name")
                if name == "bash":
                    result = self.run_bash(call, step)
                else:
                    result = f"{ERROR_PREFIX}unknown tool {name!r}: the only tool is `bash`"
                    step["commands"].append({"tool_call_id": call.get("id"), "error": result})
                worker.messages.append({"role": "tool", "tool_call_id": call.get("id", ""), "content": result})
            self.save()
        return f"{REPORT_PREFIX}{agent_id} (stopped at its step limit of {a.worker_max_steps} steps without a report)"

    def planner_tool(self, call: dict, step: dict) -> str:
        a = self.args
        name = (call.get("function") or {}).get("name")
        if name == "delegate":
            task, error = tool_arguments(call, "delegate", "task")
            if task is None:
                step["commands"].append({"tool_call_id": call.get("id"), "error": error})
                return ERROR_PREFIX + error
            before = len(self.workers)
            result = self.delegate(task)
            step["commands"].append({"tool_call_id": call.get("id"), "delegate": task,
                                     "agent": self.workers[-1].id if len(self.workers) > before else None})
            return result
        if name == a.planner_tools == "bash":
            return self.run_bash(call, step)
        if name == a.planner_tools == "inspect":
            path, error = tool_arguments(call, "inspect", "path")
            if path is None:
                step["commands"].append({"tool_call_id": call.get("id"), "error": error})
                return ERROR_PREFIX + error
            step["commands"].append({"tool_call_id": call.get("id"), "inspect": path})
            return inspect_path(path, a.workdir, a.max_output_chars)
        error = f"unknown tool {name!r}: the tools are `delegate` and `{a.planner_tools}`"
        step["commands"].append({"tool_call_id": call.get("id"), "error": error})
        return ERROR_PREFIX + error

    # -- the loop ----------------------------------------------------------------------------------
    def first_message(self) -> str:
        if self.args.split != "lines":
            return self.task
        items = split_task(self.task)
        parts = items[: self.args.max_delegations]
        if not parts:
            return self.task
        reports = "\n\n".join(self.delegate(part) for part in parts)
        if len(parts) < len(items):
            return self.task + SPLIT_PARTIAL.format(n=len(parts), total=len(items), reports=reports)
        return self.task + SPLIT_INTRO.format(n=len(parts), reports=reports)

    def run(self) -> int:
        a = self.args
        try:
            agent_base_url(a.base_url, WORKER_PREFIX + "1")
        except ValueError as e:
            print(f"planner_agent: {e}", file=sys.stderr, flush=True)
            return self.finish(EXIT_USAGE, "usage", str(e))
        try:
            first = self.first_message()
            self.planner = Agent(self, MAIN_AGENT, a.base_url, self.planner_prompt, self.planner_tools, first,
                                 headers={AGENT_HEADER: MAIN_AGENT})
            for n in range(a.max_steps):
                message, finish_reason = self.planner.call()
                tool_calls = message.get("tool_calls") or []
                step: dict = {"step": n, "finish_reason": finish_reason, "commands": []}
                self.planner.steps.append(step)
                if not tool_calls:
                    if self.planner.needs_nudge(message, finish_reason):
                        step["format_error"] = True
                        cut = react.CUT_OFF if finish_reason == "length" else ""
                        tools = ", ".join(f"`{t['function']['name']}`" for t in self.planner_tools)
                        self.planner.messages.append({"role": "user", "content": cut + PLANNER_NUDGE.format(tools=tools)})
                        self.save()
                        continue
                    step["final_answer"] = message.get("content") or ""
                    return self.finish(EXIT_OK, "final_answer")
                for call in tool_calls:
                    result = self.planner_tool(call, step)
                    self.planner.messages.append({"role": "tool", "tool_call_id": call.get("id", ""),
                                                  "content": result})
                self.save()
        except react.ApiError as e:
            print(f"planner_agent: {e}", file=sys.stderr, flush=True)
            return self.finish(e.exit_code, "api_error", str(e))
        print(f"planner_agent: step limit reached ({a.max_steps} planner model calls) without finishing",
              file=sys.stderr, flush=True)
        return self.finish(EXIT_STEP_LIMIT, "step_limit")


def main(argv: list[str] | None = None) -> int:
    return react.cli_main("planner_agent", parse_args, Episode, argv)


if __name__ == "__main__":
    sys.exit(main())
