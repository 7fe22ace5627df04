"""Command-line harnesses described by a TOML spec: no Python at all.

A spec says how to install the program (Debian packages, files beside the spec, shell steps),
the command line that runs it once, its environment (with placeholders for what the episode
knows), and how its exit status maps to stop reasons::

    id = "acme/echo-agent-v0"
    description = "asks the model once with curl"
    version = "1.0"
    dialect = "openai"            # what it speaks to the proxy: openai | responses | anthropic
    streams = false
    uses_tools = false

    [install]
    apt = ["curl"]                # Debian packages (the image layer; the local runtime uses the host's)
    files = { "agent.sh" = "/opt/acme/agent.sh" }   # beside the spec -> path in the runtime
    run = ["chmod 0755 /opt/acme/agent.sh"]        # shell steps after the files

    [launch]
    command = "/opt/acme/agent.sh {instruction}"
    env = { OPENAI_BASE_URL = "{base_url}", OPENAI_API_KEY = "{api_key}", MODEL = "{model}" }

    [exit]                        # exit status -> stop reason; others: the default mapping
    0 = "completed"
    3 = "step_limit"

Placeholders (:data:`PLACEHOLDERS`): ``{base_url}`` (the proxy session, ending in ``/v1``),
``{session_url}`` (the same without ``/v1``, for clients that add it themselves),
``{api_key}``, ``{model}``, ``{instruction}``, ``{max_steps}``, ``{output_dir}``, ``{workdir}``;
``{{`` and ``}}`` are literal braces. In ``command`` each value is substituted shell-quoted
(an instruction cannot inject shell syntax); in ``env`` values verbatim. Paths in ``files`` and
``{output_dir}``/``{workdir}`` are task paths: on the local runtime without isolation they are
mapped into its fake root.

Installation: on Docker, :meth:`CommandHarness.image_layer` installs ``apt`` packages, copies
the files and runs the steps once per task image (cached by Docker). On runtimes without images
(the local runtime), :meth:`CommandHarness.install` writes the files and runs the steps in the
runtime before every episode (keep them cheap and idempotent; ``apt`` packages must be on the
host already).

>>> import tempfile, pathlib
>>> spec = pathlib.Path(tempfile.mkdtemp()) / "h.toml"
>>> _ = spec.write_text('id = "demo/hi-v0"\\n[launch]\\ncommand = "echo {instruction}"\\n'
...                     'env = { URL = "{base_url}" }\\n[exit]\\n3 = "step_limit"\\n')
>>> h = CommandHarness.from_toml(spec)
>>> from agentgym.harness import HarnessContext
>>> from agentgym.types import Task
>>> ctx = HarnessContext(task=Task(id="t", instruction="it's done", env="demo/x-v0"),
...                      base_url="http://127.0.0.1:8000/s/abc/v1", model="policy")
>>> launch = h.launch(ctx, None)
>>> launch.cmd.endswith("echo 'it'\\"'\\"'s done'"), launch.env["URL"]
(True, 'http://127.0.0.1:8000/s/abc/v1')
>>> h.id, h.step_limit_exit_codes
('demo/hi-v0', (3,))
"""

from __future__ import annotations

import hashlib
import shlex
import string
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from agentgym.errors import ConfigError, HarnessError
from agentgym.harness import CHECK_REPLIES, Harness, HarnessContext, ImageLayer, Launch
from agentgym.registries import ID_RE
from agentgym.runtime.base import ExecResult, Runtime
from agentgym.types import StopReason

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["DIALECTS", "PLACEHOLDERS", "CommandHarness", "HarnessSpec"]

PLACEHOLDERS = ("base_url", "session_url", "api_key", "model", "instruction", "max_steps", "output_dir",
                "workdir")
"""What ``{name}`` may stand for in ``launch.command`` and ``launch.env``."""
DIALECTS = ("openai", "responses", "anthropic")
"""API dialects a spec may declare (OpenAI chat completions, OpenAI Responses, Anthropic Messages)."""
_TOP_KEYS = {"id", "description", "version", "dialect", "streams", "uses_tools", "install_mb", "install",
             "launch", "exit", "check"}
_SECTION_KEYS = {"install": {"apt", "files", "run", "timeout"}, "launch": {"command", "env"},
                 "check": {"replies"}}


@dataclass(frozen=True)
class HarnessSpec:
    """A parsed, validated TOML spec (see the module docstring)."""

    id: str
    command: str
    path: Path | None = None
    """The spec file (files are found beside it)."""
    description: str = ""
    version: str = ""
    dialect: str = "openai"
    streams: bool = False
    uses_tools: bool = False
    install_mb: float | None = None
    apt: tuple[str, ...] = ()
    files: Mapping[str, str] = field(default_factory=dict)
    """Host path (absolute, resolved beside the spec) -> path in the runtime."""
    run: tuple[str, ...] = ()
    install_timeout: float = 600.0
    env: Mapping[str, str] = field(default_factory=dict)
    exit: Mapping[int, StopReason] = field(default_factory=dict)
    check_replies: tuple[str, ...] = ()

    @classmethod
    def from_toml(cls, path: str | Path) -> HarnessSpec:
        """Read and validate ``path``; :class:`~agentgym.errors.ConfigError` says what is wrong."""
        p = Path(path).expanduser()
        try:
            data = tomllib.loads(p.read_text())
        except OSError as e:
            raise ConfigError(f"cannot read the harness spec {p}: {e}") from e
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{p} is not valid TOML: {e}") from e
        return cls.from_dict(data, path=p.absolute())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: Path | None = None) -> HarnessSpec:
        where = str(path) if path else "harness spec"

        def bad(message: str) -> ConfigError:
            return ConfigError(f"{where}: {message}")

        unknown = set(data) - _TOP_KEYS
        if unknown:
            raise bad(f"unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(_TOP_KEYS))}")
        for section, keys in _SECTION_KEYS.items():
            if not isinstance(data.get(section, {}), dict):
                raise bad(f"[{section}] must be a table")
            extra = set(data.get(section, {})) - keys
            if extra:
                raise bad(f"unknown key(s) in [{section}]: {', '.join(sorted(extra))}; known: {', '.join(sorted(keys))}")
        hid = data.get("id")
        if not isinstance(hid, str) or not ID_RE.match(hid):
            raise bad(f"id must look like 'namespace/name-vN', got {hid!r}")
        dialect = data.get("dialect", "openai")
        if dialect not in DIALECTS:
            raise bad(f"dialect must be one of {', '.join(DIALECTS)}, got {dialect!r}")
        launch = data.get("launch", {})
        command = launch.get("command")
        if not isinstance(command, str) or not command.strip():
            raise bad("[launch] command is required: the command line that runs the harness once")
        env = launch.get("env", {})
        if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
            raise bad("[launch] env must map names to strings")
        for text in (command, *env.values()):
            _check_placeholders(text, bad)
        install = data.get("install", {})
        base = path.parent if path else Path.cwd()
        files: dict[str, str] = {}
        for src, dst in dict(install.get("files", {})).items():
            host = (base / src).resolve()
            if not host.is_file():
                raise bad(f"[install] files: {src} is not a file beside the spec ({host})")
            if not isinstance(dst, str) or not dst.startswith("/"):
                raise bad(f"[install] files: the destination of {src} must be an absolute path, got {dst!r}")
            files[str(host)] = dst
        exit_map: dict[int, StopReason] = {}
        for code, reason in dict(data.get("exit", {})).items():
            try:
                exit_map[int(code)] = StopReason(reason)
            except ValueError:
                raise bad(f"[exit] {code} = {reason!r}: keys are exit statuses, values one of "
                          f"{', '.join(r.value for r in StopReason)}") from None
        replies = data.get("check", {}).get("replies", [])
        if not isinstance(replies, list) or not all(isinstance(r, str) for r in replies):
            raise bad("[check] replies must be a list of strings")
        apt = install.get("apt", [])
        run = install.get("run", [])
        for name, value in (("apt", apt), ("run", run)):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise bad(f"[install] {name} must be a list of strings")
        return cls(id=hid, command=command, path=path, description=str(data.get("description", "")),
                   version=str(data.get("version", "")), dialect=dialect, streams=bool(data.get("streams", False)),
                   uses_tools=bool(data.get("uses_tools", False)),
                   install_mb=float(data["install_mb"]) if "install_mb" in data else None,
                   apt=tuple(apt), files=files, run=tuple(run),
                   install_timeout=float(install.get("timeout", 600.0)), env=dict(env), exit=exit_map,
                   check_replies=tuple(replies))


def _check_placeholders(text: str, bad: Any) -> None:
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(text) if name is not None]
    except ValueError as e:
        raise bad(f"{text!r}: {e} (write a literal brace as {{{{ or }}}})") from None
    unknown = [n for n in names if n not in PLACEHOLDERS]
    if unknown:
        raise bad(f"unknown placeholder(s) {', '.join('{' + n + '}' for n in unknown)} in {text!r}; "
                  f"known: {', '.join('{' + p + '}' for p in PLACEHOLDERS)}")


class CommandHarness(Harness):
    """A harness run from a :class:`HarnessSpec`. :meth:`from_toml` returns an instance of a
    subclass made for the spec, so its capabilities are class variables like any harness's."""

    spec: ClassVar[HarnessSpec]

    @classmethod
    def from_spec(cls, spec: HarnessSpec) -> CommandHarness:
        made = type(f"CommandHarness[{spec.id}]", (cls,), {
            "id": spec.id, "spec": spec, "dialects": (spec.dialect,), "streams": spec.streams,
            "uses_tools": spec.uses_tools, "version": spec.version, "install_mb": spec.install_mb,
            "step_limit_exit_codes": tuple(c for c, r in spec.exit.items() if r == StopReason.STEP_LIMIT),
            "__doc__": spec.description or f"The command-line harness {spec.id} ({spec.path})."})
        harness: CommandHarness = made()
        return harness

    @classmethod
    def from_toml(cls, path: str | Path) -> CommandHarness:
        return cls.from_spec(HarnessSpec.from_toml(path))

    # -- installation --------------------------------------------------------------------------
    def _context_name(self, host: str) -> str:
        return f"files/{hashlib.sha256(host.encode()).hexdigest()[:12]}-{Path(host).name}"

    def image_layer(self) -> ImageLayer | None:
        spec = self.spec
        if not (spec.apt or spec.files or spec.run):
            return None
        lines = []
        if spec.apt:
            lines.append("RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "
                         f"--no-install-recommends {' '.join(map(shlex.quote, spec.apt))} "
                         "&& apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin")
        context: dict[str, str] = {}
        for host, dst in spec.files.items():
            name = self._context_name(host)
            context[name] = host
            lines.append(f"COPY {name} {dst}")
        lines += [f"RUN {step}" for step in spec.run]
        dockerfile = "\n".join(lines) + "\n"
        digest = hashlib.sha256(dockerfile.encode())
        for host in sorted(spec.files):
            digest.update(Path(host).read_bytes())
        return ImageLayer(dockerfile=dockerfile, context_files=context, cache_key=f"cmd-{digest.hexdigest()[:16]}")

    async def install(self, runtime: Runtime) -> None:
        """Without images: write the files and run the steps in the runtime (each episode)."""
        if runtime.uses_images:
            return  # the image layer did it
        for host, dst in self.spec.files.items():
            data = Path(host).read_bytes()
            await runtime.write_file(dst, data, mode=0o755 if Path(host).stat().st_mode & 0o111 else 0o644)
        for step in self.spec.run:
            result = await runtime.exec(step, timeout=self.spec.install_timeout)
            if not result.ok:
                how = "timed out" if result.timed_out else f"exited {result.exit_code}"
                raise HarnessError(f"{self.id}: install step {step!r} {how}: "
                                   f"{(result.stderr or result.stdout)[-2000:]}")

    # -- launch --------------------------------------------------------------------------------
    def values(self, ctx: HarnessContext, runtime: Runtime | None) -> dict[str, str]:
        """What each placeholder stands for in this episode."""
        def path(p: str) -> str:
            return runtime.process_path(p) if runtime is not None else p

        session = ctx.base_url[: -len("/v1")] if ctx.base_url.endswith("/v1") else ctx.base_url
        return {"base_url": ctx.base_url, "session_url": session, "api_key": ctx.api_key, "model": ctx.model,
                "instruction": ctx.task.instruction, "max_steps": str(ctx.max_steps),
                "output_dir": path(ctx.output_dir), "workdir": path(ctx.task.workdir)}

    def launch(self, ctx: HarnessContext, runtime: Runtime | None) -> Launch:
        values = self.values(ctx, runtime)
        quoted = {k: shlex.quote(v) for k, v in values.items()}
        env = {k: v.format_map(values) for k, v in self.spec.env.items()}
        # Task paths in the command (files it installed) reach the runtime's processes through
        # Runtime.exec, which rewrites command strings where the runtime needs it.
        cmd = f'mkdir -p {quoted["output_dir"]} && {self.spec.command.format_map(quoted)}'
        return Launch(cmd=cmd, env=env)

    def stop_reason(self, result: ExecResult) -> StopReason:
        if result.oom_killed:
            return StopReason.OOM
        if result.timed_out:
            return StopReason.TIMEOUT
        if result.exit_code in self.spec.exit:
            return self.spec.exit[result.exit_code]
        return super().stop_reason(result)

    def check_replies(self) -> Sequence[str]:
        return self.spec.check_replies or CHECK_REPLIES
