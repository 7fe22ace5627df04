"""The ``agentgym`` command line.

    agentgym quickstart                         the whole loop on the tiny local model
    agentgym train --config X.toml [--set k=v]  train: rollouts, step-level updates, weight sync
    agentgym rollout --env E --harness H --model M --samples N --out DIR
    agentgym export IN OUT                      convert a journal or dataset (.jsonl <-> .parquet)
    agentgym envs list | agentgym envs show ID|PATH | agentgym harnesses list
    agentgym check env ID|PATH [--tasks a,b] [--runtime R]   oracle scores 1, doing nothing 0
    agentgym prebuild ID|PATH [--harness H]     build task images (and a harness layer) ahead of a run
    agentgym model build-tiny --out DIR
    agentgym setup                              install/start Docker and build the base image
    agentgym serve --model M                    the proxy alone, for pointing a harness at by hand
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from agentgym.errors import AgentGymError

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

    from agentgym.env import Env

RUNTIME_HELP = "docker, local (a bubblewrap sandbox), local-unsafe (no isolation) or auto."
app = typer.Typer(add_completion=False, no_args_is_help=True, help="A gym for agentic reinforcement learning.")
envs_app = typer.Typer(no_args_is_help=True, help="Environment suites.")
harnesses_app = typer.Typer(no_args_is_help=True, help="Harness adapters.")
model_app = typer.Typer(no_args_is_help=True, help="Local models.")
check_app = typer.Typer(no_args_is_help=True, help="Check that an environment's tasks can be scored.")
app.add_typer(envs_app, name="envs")
app.add_typer(check_app, name="check")
app.add_typer(harnesses_app, name="harnesses")
app.add_typer(model_app, name="model")


def _fail(e: Exception) -> None:
    typer.secho(f"error: {e}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


@app.command()
def quickstart(
    out: Annotated[str, typer.Option(help="Output directory (journal, dataset, call log).")] = "runs/quickstart",
    runtime: Annotated[str, typer.Option(help=RUNTIME_HELP)] = "auto",
    samples: Annotated[int, typer.Option(help="Episodes per task (the GRPO group size).")] = 8,
    max_steps: Annotated[int, typer.Option(help="Agent steps per episode.")] = 6,
    as_json: Annotated[bool, typer.Option("--json", help="Also print the summary as JSON.")] = False,
) -> None:
    """Build the tiny model, roll out on the terminal tasks, export, take one GRPO step."""
    from agentgym.quickstart import QuickstartOptions, run_quickstart

    try:
        summary = run_quickstart(QuickstartOptions(out_dir=out, runtime=runtime, samples=samples, max_steps=max_steps))
    except AgentGymError as e:
        _fail(e)
    if as_json:
        print(json.dumps(summary, indent=2))


@app.command()
def rollout(
    env: Annotated[str, typer.Option(help="A registered env id (see `agentgym envs list`), a task directory or a "
                                     "directory of tasks (Harbor or Terminal-Bench 1), a SWE-bench-style "
                                     ".json/.jsonl file, or module:attr.")],
    harness: Annotated[str, typer.Option(help="Harness id (see `agentgym harnesses list`).")] = "agentgym/react-v0",
    model: Annotated[str, typer.Option(help="'tiny', a checkpoint path, or vllm:<url>:<tokenizer>.")] = "tiny",
    samples: Annotated[int, typer.Option(help="Episodes per task.")] = 4,
    tasks: Annotated[str, typer.Option(help="Comma-separated task ids (default: all).")] = "",
    out: Annotated[str, typer.Option(help="Output directory; re-running resumes from its journal.")] = "runs/latest",
    runtime: Annotated[str, typer.Option(help=RUNTIME_HELP)] = "auto",
    concurrency: Annotated[int, typer.Option(help="Episodes in flight.")] = 4,
    max_steps: Annotated[int | None, typer.Option(help="Override the tasks' step limit.")] = None,
    timeout: Annotated[float | None, typer.Option(help="Override the tasks' timeout (seconds).")] = None,
    max_tokens: Annotated[int, typer.Option(help="Completion budget when the harness sets none.")] = 256,
) -> None:
    """Run tasks x samples with a harness against a model; writes a trajectory dataset."""
    from agentgym import registries
    from agentgym.check import select_tasks
    from agentgym.engines import load_engine
    from agentgym.rollout.runner import RolloutConfig, run_rollouts

    try:
        # Everything the run needs is checked before the model loads (minutes for a real one).
        suite = load_env_target(env)
        selected = select_tasks(suite, _task_ids(tasks))
        registries.harnesses.spec(harness)
        engine = load_engine(model)
        cfg = RolloutConfig(env=suite, harness=harness, samples=samples,
                            task_ids=[t.id for t in selected] if tasks else None, out_dir=out, runtime=runtime,
                            concurrency=concurrency, max_steps=max_steps, timeout_s=timeout,
                            default_max_tokens=max_tokens)
        try:
            result = asyncio.run(run_rollouts(cfg, engine))
        finally:
            asyncio.run(engine.aclose())
    except AgentGymError as e:
        _fail(e)
    main = result.main
    mean = sum(t.reward for t in main) / max(1, len(main))
    sampled = sum(t.sampled_tokens for t in main)
    trained = sum(t.trained_tokens for t in main)
    typer.echo(f"{len(main)} episodes ({result.backend}), mean reward {mean:.3f}, "
               f"delivered_fraction {trained / sampled if sampled else 1.0:.3f}, "
               f"{sum(1 for t in main if t.error)} with errors")
    typer.echo(f"dataset: {result.parquet}  journal: {result.journal}")


@app.command("train")
def train_cmd(
    config: Annotated[Path | None, typer.Option(help="A TOML training config (see examples/train/).")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a config key: --set estimator=gigpo "
                                                    "--set loss_config.eps_hi=0.28 (repeatable).")] = None,
) -> None:
    """Train a policy: rollouts -> step-level advantages -> updates -> new weights, per iteration.
    Re-running the same command resumes from the last checkpoint."""
    from agentgym.trainers.train import train_from

    try:
        result = train_from(config, set_ or [])
    except AgentGymError as e:
        _fail(e)
    last = result.metrics[-1] if result.metrics else {}
    typer.echo(f"done: {len(result.metrics)} iterations, policy version {result.policy_version}, "
               f"last success rate {last.get('success_rate', 0):.2f}; metrics: {result.out / 'metrics.jsonl'}, "
               f"TensorBoard: {result.out / 'tensorboard'}, checkpoints: {result.out / 'checkpoints'}")


@app.command("export")
def export_cmd(
    src: Annotated[Path, typer.Argument(help="A run directory, or a .jsonl/.parquet dataset.")],
    dst: Annotated[Path, typer.Argument(help="Output .jsonl or .parquet.")],
) -> None:
    """Convert trajectories between JSONL and Parquet (a run directory reads its journal)."""
    from agentgym import export

    try:
        path = src / "episodes.jsonl" if src.is_dir() else src
        trajs = export.read(path)
        export.write(trajs, dst)
    except (AgentGymError, FileNotFoundError) as e:
        _fail(e)
    typer.echo(f"wrote {len(trajs)} trajectories to {dst} (schema version {export.SCHEMA_VERSION})")


def load_env_target(target: str) -> Env:
    """An environment from a command's ENV argument (:func:`agentgym.sources.env_from`: a
    registered id, a task directory or a directory of tasks, a SWE-bench-style file, or
    ``module:attr``), read before anything heavy is loaded."""
    import warnings

    from agentgym.sources import env_from

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        env = env_from(target)
    for w in caught:  # what the tasks ask for that agentgym does not honour, as plain lines
        typer.secho(f"warning: {w.message}", fg=typer.colors.YELLOW, err=True)
    return env


def _task_ids(tasks: str) -> list[str] | None:
    return [t.strip() for t in tasks.split(",") if t.strip()] or None


def _console() -> Console:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


def _progress(console: Console, total: int) -> Progress:
    """A transient bar (like the rollout's): what is running now, steps done, elapsed time."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=console, transient=True,
                        disable=not console.is_terminal)
    progress.add_task("starting", total=total)
    return progress


@check_app.command("env")
def check_env_cmd(
    target: Annotated[str, typer.Argument(metavar="ID|PATH", help="A registered env id (see `agentgym envs "
                                          "list`), or a Harbor task directory or a directory of them.")],
    tasks: Annotated[str, typer.Option(help="Comma-separated task ids (default: all).")] = "",
    runtime: Annotated[str, typer.Option(help="docker, local or auto.")] = "auto",
) -> None:
    """For each task: build its image, then check that doing nothing scores 0 and the reference
    solution (oracle) scores 1, each in a fresh runtime. Exits 1 when any task fails."""
    from rich.markup import escape

    from agentgym.check import check_env, format_failure, format_line, format_summary, select_tasks
    from agentgym.runtime import get_backend

    console = _console()
    try:
        env = load_env_target(target)
        selected = select_tasks(env, _task_ids(tasks))
        backend = get_backend(runtime)
    except AgentGymError as e:
        _fail(e)
    width = max(len(t.id) for t in selected)
    console.print(f"checking {env.id}: {len(selected)} task(s) on the {backend.name} runtime")
    console.print(f"{'task':<{width}}  {'build':>6}  checks")
    try:
        with _progress(console, len(selected)) as progress:
            bar = progress.task_ids[0]

            def on_result(result: Any) -> None:
                style = "red" if result.failed else ("yellow" if result.skipped else "")
                line = format_line(result, width)
                console.print(f"[{style}]{escape(line)}[/]" if style else line, markup=bool(style))
                progress.advance(bar)

            backend.status_listener = lambda m: progress.update(bar, description=m)
            report = asyncio.run(check_env(env, backend, task_ids=[t.id for t in selected],
                                           on_status=lambda m: progress.update(bar, description=m),
                                           on_result=on_result))
    except AgentGymError as e:
        _fail(e)
    finally:
        backend.close()
    for failed in report.failed:
        console.print(format_failure(failed), style="red", markup=False)
    console.print(format_summary(report), style="bold red" if not report.ok else "bold", markup=False)
    if not report.ok:
        raise typer.Exit(code=1)


@app.command("prebuild")
def prebuild_cmd(
    target: Annotated[str, typer.Argument(metavar="ID|PATH", help="A registered env id, or a Harbor task "
                                          "directory or a directory of them.")],
    harness: Annotated[str | None, typer.Option(help="Also build this harness's layer on each task image.")] = None,
    tasks: Annotated[str, typer.Option(help="Comma-separated task ids (default: all).")] = "",
) -> None:
    """Build every task image (and with --harness the harness layer on top) ahead of a run.
    Unchanged build contexts are not rebuilt. Exits 1 when a build fails."""
    import time

    from agentgym import registries
    from agentgym.check import select_tasks
    from agentgym.prebuild import prebuild
    from agentgym.runtime import get_backend
    from agentgym.runtime.docker import docker_available

    console = _console()
    try:
        env = load_env_target(target)
        selected = select_tasks(env, _task_ids(tasks))
        layer = registries.harnesses.make(harness) if harness else None
        if not docker_available():
            raise AgentGymError("no Docker engine answers: run `agentgym setup` (images are Docker's)")
    except AgentGymError as e:
        _fail(e)
    backend = get_backend("docker")
    width = max(len(t.id) for t in selected)
    console.print(f"building the images of {env.id}: {len(selected)} task(s)"
                  + (f" + the {harness} layer" if harness else ""))
    t0 = time.perf_counter()
    try:
        with _progress(console, len(selected) * (2 if layer else 1)) as progress:
            bar = progress.task_ids[0]

            def on_built(item: Any) -> None:
                what = "" if item.layer == "task" else f"+ {item.layer} "
                line = f"{item.task_id:<{width}}  {item.seconds:6.1f}s  {what}{item.image or 'FAILED'}"
                if item.skipped:
                    console.print(f"{item.task_id:<{width}}       -  skipped: {item.skipped}", markup=False)
                elif item.error:
                    console.print(f"{line}\n{item.error}", style="red", markup=False)
                else:
                    console.print(line, markup=False)
                progress.advance(bar)

            backend.status_listener = lambda m: progress.update(bar, description=m)
            built = asyncio.run(prebuild(env, backend, harness=layer, task_ids=[t.id for t in selected],
                                         on_start=lambda m: progress.update(bar, description=f"building {m}"),
                                         on_built=on_built))
    except AgentGymError as e:
        _fail(e)
    finally:
        backend.close()
    failed = [b for b in built if not b.ok]
    built = [b for b in built if not b.skipped]
    console.print(f"{len(built)} image(s) ready in {time.perf_counter() - t0:.1f}s"
                  + (f", {len(failed)} FAILED" if failed else ""), style="bold red" if failed else "bold")
    if failed:
        raise typer.Exit(code=1)


def _list(registry: Any) -> None:
    for id_, spec in registry.items():
        typer.echo(f"{id_:32s} {spec.description}")


@envs_app.command("list")
def envs_list() -> None:
    """Registered environment suites."""
    from agentgym import registries

    _list(registries.envs)


@envs_app.command("show")
def envs_show(
    target: Annotated[str, typer.Argument(metavar="ID|PATH", help="A registered env id, a task directory or a "
                                          "directory of tasks, a SWE-bench-style .json/.jsonl file, or module:attr.")],
) -> None:
    """The tasks of an environment: image, limits, where they run, and what of their definition
    agentgym does not honour."""
    import warnings

    from agentgym.runtime import get_backend

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the notes are listed below, per task
        try:
            env = load_env_target(target)
        except AgentGymError as e:
            _fail(e)
    tasks = env.tasks()
    backends = [get_backend("docker"), get_backend("local")]
    try:
        typer.echo(f"{env.id}: {len(tasks)} task(s)")
        for task in tasks:
            lim = task.limits
            typer.echo(f"\n{task.id}")
            built = f" (built from {task.dockerfile_dir})" if task.dockerfile_dir else (
                " (prebuilt: must exist locally, nothing is pulled)" if task.image else "")
            typer.echo(f"  image     {task.image or '-'}{built}")
            parts = [f"timeout {lim.timeout_s:g}s", f"memory {lim.memory or '-'}", f"cpus {lim.cpus or '-'}",
                     f"pids {lim.pids or 'default'}", f"steps {lim.max_steps}", f"network {task.network}"]
            typer.echo(f"  limits    {', '.join(parts)}")
            for backend in backends:
                reason = env.unsupported(task, backend)
                if reason:
                    typer.echo(f"  {backend.name:<9} no: {reason}")
                else:
                    unenforced = [k for k in ("memory", "cpus", "pids") if k not in backend.enforced_limits]
                    extra = f" (does not limit {', '.join(unenforced)})" if unenforced else ""
                    typer.echo(f"  {backend.name:<9} yes{extra}")
            for note in env.notes(task):
                typer.echo(f"  not honoured: {note}")
    finally:
        for backend in backends:
            backend.close()


@harnesses_app.command("list")
def harnesses_list() -> None:
    """Registered harnesses."""
    from agentgym import registries

    _list(registries.harnesses)


@model_app.command("build-tiny")
def build_tiny(
    out: Annotated[Path, typer.Option(help="Checkpoint directory to write.")],
    sft_steps: Annotated[int | None, typer.Option(help="Warm-start steps on synthetic tool-call transcripts.")] = None,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Build the tiny local model (tokenizer + chat template + Qwen2 LM) as a HF checkpoint."""
    from agentgym.models.tiny import DEFAULT_CLI_SFT_STEPS, build_tiny_model

    path = build_tiny_model(out, sft_steps=DEFAULT_CLI_SFT_STEPS if sft_steps is None else sft_steps, seed=seed)
    typer.echo(f"tiny model written to {path}")


@app.command()
def view(
    src: Annotated[Path, typer.Argument(help="A run directory, or a .jsonl/.parquet dataset.")],
    out: Annotated[Path | None, typer.Option(help="HTML file to write (default: next to the data).")] = None,
    tokenizer: Annotated[str | None, typer.Option(help="Checkpoint whose tokenizer decodes the tokens.")] = None,
) -> None:
    """Write a self-contained HTML trajectory viewer (steps, tokens coloured by role, logprobs)."""
    from agentgym.viewer import write_view

    try:
        path = write_view(src, out, tokenizer_path=tokenizer)
    except (AgentGymError, FileNotFoundError) as e:
        _fail(e)
    typer.echo(f"open {path} in a browser")


@app.command()
def setup(
    install: Annotated[bool, typer.Option(help="apt-get install docker.io when missing (Debian, root).")] = True,
) -> None:
    """Make Docker usable: install the engine if missing, start it, build the base image."""
    from agentgym import provision as rs

    try:
        rs.ensure_docker(install=install)
        rs.ensure_base_image()
    except AgentGymError as e:
        _fail(e)
    typer.echo("docker ready; base image agentgym/base:bookworm present")


@app.command()
def serve(
    model: Annotated[str, typer.Option(help="'tiny', a checkpoint path, or vllm:<url>:<tokenizer>.")] = "tiny",
    port: Annotated[int, typer.Option()] = 8000,
    out: Annotated[str, typer.Option(help="Where the call journal goes.")] = "runs/serve",
) -> None:
    """Run the proxy alone. Any session id in the URL is opened on first use:
    point a harness at http://127.0.0.1:PORT/s/<any-name>/v1."""
    from agentgym.engines import load_engine
    from agentgym.proxy.server import Proxy

    async def main() -> None:
        engine = load_engine(model)
        proxy = Proxy(engine, out, port=port, allow_new_sessions=True)
        await proxy.start()
        typer.echo(f"serving {engine.model_name} at http://127.0.0.1:{proxy.port}/s/<session>/v1 "
                   f"(journal: {out}/calls); Ctrl-C to stop")
        try:
            await asyncio.Event().wait()
        finally:
            await proxy.stop()
            await engine.aclose()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


def main() -> None:
    try:
        app()
    except AgentGymError as e:  # a last resort: errors say what to do, not a traceback
        typer.secho(f"error: {e}", fg=typer.colors.RED, err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
