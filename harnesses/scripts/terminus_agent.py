#!/usr/bin/env python3
"""A Terminus-style terminal agent: keystrokes in, screen out, one JSON object per turn.

Standard library only (Python >= 3.8) plus ``tmux``. It works the way Terminal-Bench's Terminus
agent does: the task runs in a tmux session; each model reply is a JSON object

    {"analysis": "...", "plan": "...",
     "commands": [{"keystrokes": "ls -la\\n", "duration": 0.1}, ...],
     "task_complete": false}

whose ``keystrokes`` are sent verbatim with ``tmux send-keys`` (a trailing ``\\n`` presses
Enter; ``C-c``, ``C-d``... are tmux key names), each followed by a wait of ``duration`` seconds
(default 1, at most ``--max-duration``); then the pane is captured and its new output is the
next user message. ``"task_complete": true`` is asked to be confirmed once, with the current
screen; a second ``true`` ends the run. A reply that is not such an object gets a user message
naming the parse error, and no keystrokes are sent.

Wire: non-streaming ``POST {base}/chat/completions`` with ``model``, ``messages`` (``system``
never; one first ``user`` message with the instruction and the screen, then ``assistant`` /
``user`` turns; every assistant message is echoed exactly as received) and the sampling
arguments given on the command line; no ``tools``.

Exit status: 0 the model confirmed ``task_complete``; 3 the step limit was hit; 4 the API
refused the request (4xx, including a full context); 5 the API stayed unavailable after the
retries (5xx, 429, connection errors). A JSON log of the run is written to ``--log``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

STEP_LIMIT, API_REFUSED, API_UNAVAILABLE = 3, 4, 5

PROMPT = """You are an AI assistant tasked with solving command-line tasks in a Linux environment. \
You will be given a task description and the output from previously executed commands. Your goal \
is to solve the task by providing batches of shell commands.

Format your response as JSON with the following structure:

{
  "analysis": "Analyze the current state based on the terminal output provided. What do you see? \
What has been accomplished? What still needs to be done?",
  "plan": "Describe your plan for the next steps. What commands will you run and why?",
  "commands": [
    {
      "keystrokes": "ls -la\\n",
      "duration": 0.1
    }
  ],
  "task_complete": false
}

Required fields:
- "analysis": your analysis of the current situation
- "plan": your plan for the next steps
- "commands": an array of command objects to execute

Optional fields:
- "task_complete": true when the task is complete (defaults to false)

Command object structure:
- "keystrokes": the exact keystrokes to send to the terminal (required)
- "duration": seconds to wait for the command to complete before the next command runs \
(defaults to 1.0)

The text inside "keystrokes" is sent verbatim: most commands should end with a newline (\\n) to \
run. For special keys use tmux names such as C-c (Ctrl+C) or C-d (Ctrl+D). Use short durations \
(0.1) for quick commands and longer ones for slow commands; you can always wait more by sending \
an empty command with a duration.

Task Description:
{instruction}

Current terminal state:
{screen}
"""

CONFIRM = ("Current terminal state:\n{screen}\n\nAre you sure you want to mark the task as complete? "
           "This will trigger your solution to be graded and you won't be able to make any further "
           "corrections. If so, include \"task_complete\": true in your JSON response again.")
PARSE_ERROR = "Previous response had parsing errors:\nERROR: {error}\n\nPlease fix these issues and provide a proper JSON response."
WARNINGS = "Previous response had warnings:\nWARNINGS: {warnings}\n\n"
NEW_OUTPUT = "New Terminal Output:\n"
SCREEN = "Current Terminal Screen:\n"
RCFILE = "PS1='\\u@agentgym:\\w\\$ '\nunset PROMPT_COMMAND\nHISTFILE=/dev/null\n"


class ApiError(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def post(url: str, body: dict, key: str, retries: int, timeout: float) -> dict:
    data = json.dumps(body).encode()
    for attempt in range(retries + 1):
        req = urllib.request.Request(url, data, {"Content-Type": "application/json",
                                                 "Authorization": "Bearer " + key})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as e:
            text = e.read().decode("utf-8", "replace")[:2000]
            if e.code != 429 and e.code < 500:
                raise ApiError(f"HTTP {e.code}: {text}", API_REFUSED) from e
            why = f"HTTP {e.code}: {text}"
        except (urllib.error.URLError, OSError, ValueError) as e:
            why = str(e)
        if attempt == retries:
            raise ApiError(f"gave up after {retries + 1} attempts: {why}", API_UNAVAILABLE)
        time.sleep(min(2 ** attempt, 30))
    raise AssertionError("unreachable")


class Tmux:
    def __init__(self, tmux: str, cwd: str, width: int, height: int) -> None:
        self.tmux = tmux
        self.socket = f"agentgym-terminus-{os.getpid()}"
        with tempfile.NamedTemporaryFile("w", prefix="terminus-rc-", suffix=".sh", delete=False) as rc:
            rc.write(RCFILE)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("OPENAI_", "AGENTGYM_")) and k not in ("TMUX", "TMUX_PANE")}
        env.setdefault("TERM", "xterm-256color")
        self.run("-f", "/dev/null", "new-session", "-d", "-s", "main", "-x", str(width), "-y", str(height),
                 "-c", cwd, f"bash --noprofile --rcfile {rc.name} -i", env=env)
        self.run("set-option", "-g", "history-limit", "100000")
        self.wait_for_prompt()

    def run(self, *args: str, env: dict | None = None) -> str:
        proc = subprocess.run([self.tmux, "-L", self.socket, *args], capture_output=True, text=True, env=env,
                              timeout=30, check=False)
        if proc.returncode != 0:
            raise RuntimeError("tmux {} failed: {}".format(args[0] if args else "", proc.stderr.strip()))
        return proc.stdout

    def wait_for_prompt(self, timeout: float = 10.0) -> None:
        end = time.time() + timeout
        while time.time() < end and "@agentgym:" not in self.screen():
            time.sleep(0.05)

    def send(self, keystrokes: str) -> None:
        self.run("send-keys", "-t", "main", keystrokes)

    def screen(self) -> str:
        return _clean(self.run("capture-pane", "-p", "-t", "main"))

    def history(self) -> str:
        return _clean(self.run("capture-pane", "-p", "-S", "-", "-t", "main"))

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, OSError, subprocess.SubprocessError):
            self.run("kill-server")


def _clean(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.rstrip("\n").split("\n")).rstrip("\n")


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return text[:half] + f"\n[... output limited to {limit} characters ...]\n" + text[-half:]


def parse_reply(content: str) -> tuple[dict | None, str, list]:
    """(the JSON object or None, the parse error, warnings)."""
    warnings: list = []
    start, end = content.find("{"), content.rfind("}")
    if start < 0 or end < start:
        return None, "No valid JSON found in response", warnings
    if content[:start].strip():
        warnings.append("Extra text detected before JSON object")
    if content[end + 1:].strip():
        warnings.append("Extra text detected after JSON object")
    try:
        obj = json.loads(content[start:end + 1])
    except ValueError as e:
        return None, f"Invalid JSON: {e}", warnings
    if not isinstance(obj, dict):
        return None, "Response must be a JSON object", warnings
    for key in ("analysis", "plan", "commands"):
        if key not in obj:
            return None, f"Missing required field: {key}", warnings
    commands = obj["commands"]
    if not isinstance(commands, list):
        return None, "Field 'commands' must be an array", warnings
    for i, cmd in enumerate(commands):
        if not isinstance(cmd, dict) or not isinstance(cmd.get("keystrokes"), str):
            return None, f"Command {i + 1} must be an object with a string 'keystrokes'", warnings
        duration = cmd.get("duration", 1.0)
        if not isinstance(duration, (int, float)) or isinstance(duration, bool) or duration < 0:
            return None, f"Command {i + 1}: 'duration' must be a non-negative number", warnings
    complete = obj.get("task_complete", False)
    if not isinstance(complete, bool):
        if isinstance(complete, str) and complete.lower() in ("true", "false"):
            obj["task_complete"] = complete.lower() == "true"
        else:
            return None, "Field 'task_complete' must be a boolean", warnings
    return obj, "", warnings


def main(argv: list | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base-url", default=os.environ.get("OPENAI_BASE_URL", ""))
    ap.add_argument("--model", required=True)
    ap.add_argument("--max-steps", type=int, default=30)
    ap.add_argument("--temperature", type=float)
    ap.add_argument("--max-tokens", type=int)
    ap.add_argument("--seed", type=int)
    ap.add_argument("--retries", type=int, default=5)
    ap.add_argument("--request-timeout", type=float, default=600.0)
    ap.add_argument("--max-duration", type=float, default=60.0)
    ap.add_argument("--max-output-chars", type=int, default=10000)
    ap.add_argument("--width", type=int, default=160)
    ap.add_argument("--height", type=int, default=40)
    ap.add_argument("--tmux", default="tmux")
    ap.add_argument("--log", default="")
    args = ap.parse_args(argv)
    key = os.environ.get("OPENAI_API_KEY", "agentgym")
    url = args.base_url.rstrip("/") + "/chat/completions"
    instruction = os.environ.get("AGENTGYM_TASK", "")
    log: dict = {"steps": [], "exit_status": None}

    term = Tmux(args.tmux, os.getcwd(), args.width, args.height)
    seen = term.history()
    messages = [{"role": "user", "content": PROMPT.replace("{instruction}", instruction)
                 .replace("{screen}", term.screen())}]
    pending_confirm = False
    code = STEP_LIMIT
    try:
        for _step in range(args.max_steps):
            body: dict = {"model": args.model, "messages": messages}
            for name in ("temperature", "max_tokens", "seed"):
                value = getattr(args, name)
                if value is not None:
                    body[name] = value
            try:
                reply = post(url, body, key, args.retries, args.request_timeout)
            except ApiError as e:
                print(f"terminus: {e}", file=sys.stderr)
                code = e.code
                break
            message = reply["choices"][0]["message"]
            content = message.get("content") or ""
            messages.append({"role": "assistant", "content": content})
            obj, error, warnings = parse_reply(content)
            log["steps"].append({"reply": content, "error": error, "warnings": warnings})
            if obj is None:
                messages.append({"role": "user", "content": PARSE_ERROR.format(error=error)})
                continue
            for cmd in obj["commands"]:
                term.send(cmd["keystrokes"])
                time.sleep(min(float(cmd.get("duration", 1.0)), args.max_duration))
            prefix = WARNINGS.format(warnings="- " + "\n- ".join(warnings)) if warnings else ""
            if obj.get("task_complete"):
                if pending_confirm:
                    code = 0
                    break
                pending_confirm = True
                seen = term.history()
                messages.append({"role": "user", "content": prefix + CONFIRM.format(
                    screen=_cut(term.screen(), args.max_output_chars))})
                continue
            pending_confirm = False
            now = term.history()
            if now.startswith(seen):  # from the line the keystrokes were typed on (its prompt) on
                output = NEW_OUTPUT + _cut(now[seen.rfind("\n") + 1:], args.max_output_chars)
            else:  # the history scrolled away or the screen was redrawn: show what is there
                output = SCREEN + _cut(term.screen(), args.max_output_chars)
            seen = now
            messages.append({"role": "user", "content": prefix + output})
    finally:
        term.close()
        log["exit_status"] = code
        log["messages"] = messages
        if args.log:
            os.makedirs(os.path.dirname(os.path.abspath(args.log)), exist_ok=True)
            with open(args.log, "w") as fh:
                json.dump(log, fh, indent=1)
    if code == STEP_LIMIT:
        print(f"terminus: step limit ({args.max_steps}) reached", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
