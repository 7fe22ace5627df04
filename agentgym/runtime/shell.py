"""A persistent interactive shell in a runtime, driven with pexpect.

:meth:`ShellSession.open` starts ``bash`` in the sandbox on a terminal
(:meth:`~agentgym.runtime.base.Runtime.attach_command`: ``docker exec -it`` in Docker, the
sandbox's ``bwrap`` command on the local runtime) and keeps it for the whole episode, so what one
command does to the shell (``cd``, variables, functions, a started REPL) is there for the next.

Prompt detection: the shell's prompts are replaced by markers carrying a random nonce and the
exit status (``PS1``), and a continuation marker (``PS2``); input echo is off, so the output of
a step is exactly what was printed between the markers. History expansion is off (``!`` is an
ordinary character, as in ``bash -c``) and Ctrl-D at the prompt does not end the shell. Every line the shell reads prints one
prompt, so a step that types ``n`` lines waits for ``n`` prompts; the last ``PS1`` gives the
exit status.

A step that does not finish within its timeout is not killed: :meth:`ShellSession.run` returns
what it printed so far with ``timed_out`` set, and the command goes on running, as in a real
terminal (the next step's lines are typed into it). :meth:`ShellSession.interrupt` (``"\\x03"``
through :meth:`run`) sends Ctrl-C: the foreground command is interrupted, typed-ahead input is
dropped, and the shell's next prompt ends the step.

>>> import asyncio
>>> from agentgym.runtime import RuntimeSpec, get_backend
>>> async def demo() -> list[str]:                            # doctest: +SKIP
...     runtime = await get_backend("docker").start(RuntimeSpec(image="agentgym/base:bookworm"))
...     async with runtime:
...         with ShellSession.open(runtime) as shell:
...             shell.run("cd /tmp && x=42")
...             return [shell.run("pwd; echo $x").output, str(shell.run("sleep 5", timeout=1).timed_out),
...                     str(shell.run("\\x03").exit_code)]
>>> asyncio.run(demo())                                      # doctest: +SKIP
['/tmp\\n42\\n', 'True', '130']
"""

from __future__ import annotations

import os
import re
import secrets
import select
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType

import pexpect

from agentgym.errors import RuntimeError_
from agentgym.runtime.base import HostCommand, Runtime

__all__ = ["CTRL_C", "ShellResult", "ShellSession"]

CTRL_C = "\x03"
"""An action made of control characters only is sent as keys, without a newline; this one interrupts."""
SHELL = ("bash", "--login", "--noediting", "-i")
"""Readline off: what is typed reaches the shell as plain lines (no redrawing to strip)."""
MAX_LINE = 4000
"""The longest line typed (in bytes): a terminal's line buffer holds 4095, and a longer line
would block the writer for good."""
QUIET_S = 0.5
"""While a command runs (a REPL, a program reading input), a step that types into it ends once
nothing has been printed for this long."""


@dataclass(frozen=True)
class ShellResult:
    """What one step printed, and how it ended."""

    output: str
    exit_code: int | None
    """The exit status at the shell's prompt; ``None`` when no prompt came back (still running,
    or waiting for more lines)."""
    timed_out: bool = False
    """No prompt within the timeout: the command is still running."""
    waiting: bool = False
    """The shell waits for more lines (a continuation prompt: an unclosed quote, a ``for``...)."""
    restarted: bool = False
    """The shell had exited and a new one was started for this step (its state is gone)."""
    typed: bool = True
    """``False``: nothing was typed (a line longer than :data:`MAX_LINE`; ``output`` says so)."""


class ShellSession:
    """One interactive shell over pexpect (see the module docstring).

    Args:
        command: the host command that attaches a terminal to the sandbox.
        timeout: default seconds per step.
        start_timeout: seconds for the shell to show its first prompt.
        quiet_s: while a command runs, a step ends once nothing was printed for this long.
        dimensions: the terminal's rows and columns.
    """

    def __init__(self, command: HostCommand, *, timeout: float = 30.0, start_timeout: float = 30.0,
                 quiet_s: float = QUIET_S, dimensions: tuple[int, int] = (40, 200)) -> None:
        self.command = command
        self.timeout = timeout
        self.start_timeout = start_timeout
        self.dimensions = dimensions
        self.quiet_s = quiet_s
        self._child: pexpect.spawn | None = None
        self._running = False
        self._start()

    @classmethod
    def open(cls, runtime: Runtime, *, workdir: str | None = None, env: Mapping[str, str] | None = None,
             timeout: float = 30.0) -> ShellSession:
        """A shell in ``runtime`` (in ``workdir``, the runtime's by default)."""
        try:
            command = runtime.attach_command(list(SHELL), tty=True, workdir=workdir,
                                             env={"TERM": "dumb", **(env or {})})
        except NotImplementedError as e:
            raise RuntimeError_(f"{type(runtime).__name__} cannot run a persistent shell: {e}") from e
        return cls(command, timeout=timeout)

    # -- lifecycle -----------------------------------------------------------------------------------
    def _start(self) -> None:
        nonce = secrets.token_hex(6)
        self._ps1 = f"__agentgym_{nonce}_"
        self._prompt = re.compile(f"__agentgym_{nonce}_(\\d+|more)__ ")
        argv = self.command.argv
        self._child = pexpect.spawn(argv[0], list(argv[1:]), env=dict(self.command.env) if self.command.env else None,
                                    cwd=self.command.cwd, encoding="utf-8", codec_errors="replace",
                                    dimensions=self.dimensions, timeout=self.start_timeout,
                                    preexec_fn=_default_interrupts)
        self._running = False
        self._taken = 0
        # Typed while echo is still on; the echo cannot match the prompt pattern ($? is not digits).
        # Typed while echo is still on: the markers are split in two quoted strings, so their
        # echo cannot match the prompt pattern.
        self._child.sendline(
            f"stty -echo -onlcr 2>/dev/null; set -o ignoreeof +H; unset HISTFILE PROMPT_COMMAND; "
            f"export PAGER=cat GIT_PAGER=cat SYSTEMD_PAGER=; "
            f"PS1='{self._ps1}''$?__ '; PS2='{self._ps1}''more__ '")
        try:
            self._child.expect(self._prompt, timeout=self.start_timeout)
            os.set_blocking(self._child.child_fd, False)  # writes with a deadline (_type)
        except (pexpect.EOF, pexpect.TIMEOUT) as e:
            before = self._child.before if isinstance(self._child.before, str) else ""
            self.close()
            why = "exited" if isinstance(e, pexpect.EOF) else f"showed no prompt within {self.start_timeout:g}s"
            raise RuntimeError_(f"the shell ({' '.join(argv[:4])} ...) {why}: {before[-1000:]!r}") from e

    @property
    def alive(self) -> bool:
        return self._child is not None and self._child.isalive()

    def close(self) -> None:
        """End the shell (and its terminal). Idempotent."""
        if self._child is not None:
            child, self._child = self._child, None
            child.close(force=True)

    def __enter__(self) -> ShellSession:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- steps ---------------------------------------------------------------------------------------
    def run(self, text: str, timeout: float | None = None) -> ShellResult:
        """Type ``text`` and a newline (control characters alone, like ``"\\x03"``, are sent as
        keys without one) and return what was printed until the shell's prompt came back for
        every line, or until ``timeout`` seconds (then ``timed_out``: the command goes on). While
        a command runs, typed lines go to it, and the step ends at the prompt or once nothing has
        been printed for ``quiet_s``."""
        restarted = False
        if not self.alive:
            self.close()
            self._start()
            restarted = True
        assert self._child is not None
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        early = self._drain()
        longest = max((len(line.encode()) for line in text.split("\n")), default=0)
        if longest > MAX_LINE:
            return ShellResult(early + f"[agentgym: a line of {longest} bytes is longer than the terminal takes "
                               f"({MAX_LINE}); nothing was typed. Write long text to a file in pieces.]\n",
                               None, restarted=restarted, typed=False)
        if text and all(ord(c) < 32 and c not in "\n\t" for c in text):
            if CTRL_C in text:
                self._child.sendintr()  # the terminal also drops typed-ahead input
                text = text.replace(CTRL_C, "")
                self._running = True
            lost = self._type(text, deadline)
            result = self._until_prompt_or_quiet(deadline)
        elif self._running:
            lost = self._type(text + "\n", deadline)
            result = self._until_prompt_or_quiet(deadline)
        else:
            lost = self._type(text + "\n", deadline)
            result = self._prompts(text.count("\n") + 1, deadline)
        note = (f"[agentgym: the terminal's input buffer is full (nothing reads it); {lost} bytes were not "
                "typed]\n") if lost else ""
        return ShellResult(early + result.output + note, result.exit_code, result.timed_out or bool(lost),
                           result.waiting, restarted)

    def _type(self, text: str, deadline: float) -> int:
        """Write ``text`` to the terminal without blocking past ``deadline`` (a program that does
        not read its input fills the terminal's buffer); returns how many bytes were not written."""
        assert self._child is not None
        fd = self._child.child_fd
        payload = text.encode()
        while payload:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([], [fd], [], remaining)[1]:
                break
            try:
                payload = payload[os.write(fd, payload[:1024]):]
            except BlockingIOError:
                time.sleep(0.01)
        return len(payload)

    def interrupt(self, timeout: float | None = None) -> ShellResult:
        """Ctrl-C: interrupt the foreground command and wait for the prompt."""
        return self.run(CTRL_C, timeout)

    def _before(self, matched: bool = True) -> str:
        """What was printed before the last match (or, after a timeout, so far) that no earlier
        step returned: after a timeout pexpect keeps the text for the next match."""
        assert self._child is not None
        text = str(self._child.before or "")
        new = text[self._taken:]
        self._taken = 0 if matched else len(text)
        return new

    def _marker(self) -> str:
        assert self._child is not None
        return self._child.match.group(1) if self._child.match else "more"

    def _eof(self, printed: str) -> ShellResult:
        self.close()
        self._running = False
        return ShellResult(_clean(printed) + "\n[agentgym: the shell exited; the next step starts a new one]\n", None)

    def _drain(self) -> str:
        """What arrived since the last step (a command that finished after its step timed out,
        prompts of lines it did not read), without waiting."""
        assert self._child is not None
        parts = []
        while True:
            try:
                self._child.expect(self._prompt, timeout=0)
            except pexpect.TIMEOUT:
                parts.append(self._before(matched=False))
                return _clean("".join(parts))
            except pexpect.EOF:
                parts.append(self._before())
                return _clean("".join(parts))
            parts.append(self._before())
            if self._marker() != "more":
                self._running = False

    def _prompts(self, count: int, deadline: float) -> ShellResult:
        """Wait for ``count`` prompts (one per line typed at the prompt)."""
        assert self._child is not None
        parts: list[str] = []
        marker = "more"
        for _ in range(count):
            try:
                self._child.expect(self._prompt, timeout=max(deadline - time.monotonic(), 0))
            except pexpect.TIMEOUT:
                parts.append(self._before(matched=False))
                self._running = True
                return ShellResult(_clean("".join(parts)), None, timed_out=True)
            except pexpect.EOF:
                return self._eof("".join([*parts, self._before()]))
            parts.append(self._before())
            marker = self._marker()
        self._running = False
        return ShellResult(_clean("".join(parts)), None if marker == "more" else int(marker),
                           waiting=marker == "more")

    def _until_prompt_or_quiet(self, deadline: float) -> ShellResult:
        """Wait for the shell's prompt; give up once nothing was printed for ``quiet_s``."""
        assert self._child is not None
        parts: list[str] = []
        quiet = False
        while True:
            wait = min(self.quiet_s, max(deadline - time.monotonic(), 0))
            try:
                self._child.expect(self._prompt, timeout=wait)
            except pexpect.TIMEOUT:
                new = self._before(matched=False)
                parts.append(new)
                if (not new and (quiet or any(parts[:-1]))) or time.monotonic() >= deadline:
                    return ShellResult(_clean("".join(parts)), None, timed_out=time.monotonic() >= deadline)
                quiet = not new
                continue
            except pexpect.EOF:
                return self._eof("".join([*parts, self._before()]))
            parts.append(self._before())
            marker = self._marker()
            if marker != "more":
                self._running = False
            return ShellResult(_clean("".join(parts)), None if marker == "more" else int(marker),
                               waiting=marker == "more")


def _default_interrupts() -> None:
    """In the shell's process, before it starts: Ctrl-C and Ctrl-\\ act by default. A process
    started in the background by a non-interactive shell (``cmd &``, a CI job) ignores SIGINT and
    SIGQUIT, and an ignored signal stays ignored across exec: the agent's Ctrl-C would do nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)


def _clean(text: str) -> str:
    return text.replace("\r\n", "\n")
