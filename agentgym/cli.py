"""The ``agentgym`` command line.

    agentgym quickstart                         the whole loop on the tiny local model
    agentgym train --config X.toml [--set k=v]  train: rollouts, step-level updates, weight sync
    agentgym rollout --env E --harness H --model M --samples N --out DIR
    agentgym export IN OUT [--format hf|trl-sft|trl-grpo|verl] [filters]   datasets for trainers
    agentgym envs list | agentgym envs show ID|PATH | agentgym harnesses list
    agentgym check env ID|PATH [--tasks a,b] [--runtime R]   oracle scores 1, doing nothing 0
    agentgym check harness ID|PATH [--runtime R]  its dialect, streaming, calls, segments on a trivial task
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
check_app = typer.Typer(no_args_is_help=True, help="Check an environment's tasks or a harness.")
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


VERBOSE_HELP = "More detail: progress notes, library warnings, tracebacks (-vv: debug)."


@app.command()
def rollout(
    env: Annotated[str, typer.Option(help="A registered env id (see `agentgym envs list`), a task directory or a "
                                     "directory of tasks (Harbor or Terminal-Bench 1), a SWE-bench-style "
                                     ".json/.jsonl file, or module:attr.")],
    harness: Annotated[str, typer.Option(help="Harness id (see `agentgym harnesses list`) or a TOML harness "
                                         "spec's path.")] = "agentgym/react-v0",
    model: Annotated[str, typer.Option(help="'tiny', a checkpoint path, or vllm:<url>:<tokenizer>.")] = "tiny",
    samples: Annotated[int, typer.Option(help="Episodes per task.")] = 4,
    tasks: Annotated[str, typer.Option(help="Comma-separated task ids (default: all).")] = "",
    out: Annotated[str, typer.Option(help="Output directory; re-running resumes from its journal.")] = "runs/latest",
    runtime: Annotated[str, typer.Option(help=RUNTIME_HELP)] = "auto",
    concurrency: Annotated[int, typer.Option(help="Episodes in flight.")] = 4,
    max_steps: Annotated[int | None, typer.Option(help="Override the tasks' step limit.")] = None,
    timeout: Annotated[float | None, typer.Option(help="Override the tasks' timeout (seconds).")] = None,
    max_tokens: Annotated[int, typer.Option(help="Completion budget when the harness sets none.")] = 256,
    progress: Annotated[bool, typer.Option(help="Show the progress bar (on a terminal).")] = True,
    warm_pool: Annotated[int, typer.Option(help="Sandboxes kept started ahead of the episodes (0: none).")] = 0,
    overprovision: Annotated[float, typer.Option(help="Start samples*(1+X) episodes per task; cancel the rest "
                                                 "once `samples` ended (kept, stop reason cancelled).")] = 0.0,
    build_timeout: Annotated[float | None, typer.Option(help="Seconds an episode's image may take.")] = None,
    setup_timeout: Annotated[float | None, typer.Option(help="Seconds to get a ready sandbox (start + "
                                                        "setup).")] = None,
    verify_timeout: Annotated[float | None, typer.Option(help="Seconds each verification may take.")] = None,
    max_starting: Annotated[int | None, typer.Option(help="Sandboxes starting at once.")] = None,
    max_verifying: Annotated[int | None, typer.Option(help="Verifications at once.")] = None,
    max_per_task: Annotated[int | None, typer.Option(help="Episodes of one task at once.")] = None,
    seed: Annotated[int | None, typer.Option(help="Reproducible run: episode ids and sampling seeds derived from "
                                             "it (same trajectories, however and wherever they run).")] = None,
    ray_workers: Annotated[int, typer.Option(help="Run the episodes on this many Ray actors, each with its own "
                                             "engine, sandboxes and proxy (0: in this process).")] = 0,
    ray_address: Annotated[str | None, typer.Option(help="The Ray cluster to join (auto, host:port); default: a "
                                                    "Ray instance on this machine for the run.")] = None,
    ray_cpus: Annotated[float, typer.Option(help="CPUs each Ray worker reserves.")] = 1.0,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help=VERBOSE_HELP)] = 0,
) -> None:
    """Run tasks x samples with a harness against a model; writes a trajectory dataset.

    One run per --out directory at a time. SIGTERM, SIGINT (Ctrl-C) or SIGHUP stop it cleanly:
    sandboxes removed, the episodes in flight listed as half episodes (re-run on resume), the
    summary written; the exit status is then 128 + the signal's number."""
    from agentgym.console import configure_output

    configure_output(verbose)
    from agentgym.check import select_tasks
    from agentgym.engines import load_engine
    from agentgym.errors import storage_error
    from agentgym.harness import load_harness
    from agentgym.rollout.metrics import format_summary
    from agentgym.rollout.runner import RolloutConfig, run_rollouts
    from agentgym.rollout.schedule import PhaseTimeouts, ResourceLimits

    try:
        # Everything the run needs is checked before the model loads (minutes for a real one).
        suite = load_env_target(env)
        selected = select_tasks(suite, _task_ids(tasks))
        load_harness(harness)
        cfg = RolloutConfig(env=env if ray_workers else suite, harness=harness, samples=samples, seed=seed,
                            task_ids=[t.id for t in selected] if tasks else None, out_dir=out, runtime=runtime,
                            concurrency=concurrency, max_steps=max_steps, timeout_s=timeout,
                            default_max_tokens=max_tokens, progress=progress, handle_signals=True,
                            warm_pool=warm_pool, overprovision=overprovision,
                            timeouts=PhaseTimeouts(build_s=build_timeout, setup_s=setup_timeout,
                                                   verify_s=verify_timeout),
                            limits=ResourceLimits(starting=max_starting, verifying=max_verifying,
                                                  per_task=max_per_task))
        if ray_workers:
            from agentgym.rollout.distributed import RayOptions, run_rollouts_ray

            result = asyncio.run(run_rollouts_ray(cfg, model, RayOptions(workers=ray_workers, address=ray_address,
                                                                         cpus_per_worker=ray_cpus)))
        else:
            engine = load_engine(model)
            try:
                result = asyncio.run(run_rollouts(cfg, engine))
            finally:
                asyncio.run(engine.aclose())
    except AgentGymError as e:
        _fail(e)
    except OSError as e:  # a file-system failure nothing below turned into a message
        _fail(storage_error(e, out))
    assert result.summary is not None
    for line in format_summary(result.summary):
        typer.echo(line)
    typer.echo(f"dataset: {result.parquet}  journal: {result.journal}  summary: {result.out_dir / 'summary.json'}")
    if result.stopped_by:
        import signal

        raise typer.Exit(code=128 + int(signal.Signals[result.stopped_by]))


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


def _csv(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


@app.command("export")
def export_cmd(
    src: Annotated[Path, typer.Argument(help="A run directory, or a .jsonl/.parquet dataset.")],
    dst: Annotated[Path, typer.Argument(help="Output: a .jsonl/.parquet file, or a directory for hf, trl-sft, "
                                        "trl-grpo and verl.")],
    format: Annotated[str, typer.Option("--format", "-f", help="jsonl, parquet, hf (Hugging Face datasets, "
                                        "agentgym's schema), trl-sft, trl-grpo or verl; default: by DST's "
                                        "suffix, hf for a directory.")] = "",
    tokens: Annotated[bool, typer.Option(help="trl-sft/verl: token ids as recorded, with the action mask as "
                                         "the completion (loss) mask, instead of chat messages only.")] = False,
    min_reward: Annotated[float | None, typer.Option(help="Keep trajectories with reward >= this.")] = None,
    max_reward: Annotated[float | None, typer.Option(help="Keep trajectories with reward <= this.")] = None,
    stop_reason: Annotated[str, typer.Option(help="Keep these stop reasons (comma-separated).")] = "",
    harness: Annotated[str, typer.Option(help="Keep these harnesses (comma-separated).")] = "",
    env: Annotated[str, typer.Option(help="Keep these environments (comma-separated).")] = "",
    min_tokens: Annotated[int | None, typer.Option(help="Longest segment at least this many tokens.")] = None,
    max_tokens: Annotated[int | None, typer.Option(help="Longest segment at most this many tokens.")] = None,
    min_steps: Annotated[int | None, typer.Option(help="At least this many steps.")] = None,
    max_steps: Annotated[int | None, typer.Option(help="At most this many steps.")] = None,
    exclude_breaks: Annotated[str, typer.Option(help="Drop trajectories with segments that start for these "
                                                "break reasons (e.g. history_edited,assistant_edited).")] = "",
    lineage: Annotated[str, typer.Option(help="all, main (main agents) or sub (sub-agents).")] = "all",
    min_policy_version: Annotated[int | None, typer.Option(help="Every sampled token at least this policy "
                                                           "version.")] = None,
    max_policy_version: Annotated[int | None, typer.Option(help="Every sampled token at most this policy "
                                                           "version.")] = None,
    scorable_only: Annotated[bool, typer.Option(help="Drop episodes that failed outside the agent.")] = False,
    model: Annotated[str | None, typer.Option(help="Model id to record (default: the run's).")] = None,
    tokenizer: Annotated[str | None, typer.Option(help="Tokenizer id to record (default: the run's model).")] = None,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help=VERBOSE_HELP)] = 0,
) -> None:
    """Export trajectories, filtered, as a dataset: agentgym's schema (.jsonl/.parquet, or a
    Hugging Face dataset directory with a dataset card), or what TRL's SFT and GRPO trainers and
    verl's data loaders take (a run directory reads its journal and call log)."""
    from agentgym.console import configure_output

    configure_output(verbose)
    from agentgym.errors import storage_error
    from agentgym.filters import TrajectoryFilter
    from agentgym.formats import export_dataset

    fmt = format or (dst.suffix.lstrip(".") if dst.suffix in (".jsonl", ".parquet") else "hf")
    try:
        flt = TrajectoryFilter(
            min_reward=min_reward, max_reward=max_reward, stop_reasons=_csv(stop_reason), harnesses=_csv(harness),
            envs=_csv(env), min_tokens=min_tokens, max_tokens=max_tokens, min_steps=min_steps, max_steps=max_steps,
            exclude_breaks=_csv(exclude_breaks), lineage=lineage, min_policy_version=min_policy_version,
            max_policy_version=max_policy_version, scorable_only=scorable_only)
        report = export_dataset(src, dst, fmt, flt=flt, tokens=tokens, model=model, tokenizer=tokenizer)
    except AgentGymError as e:
        _fail(e)
    except OSError as e:
        _fail(storage_error(e, dst, "read or write"))
    from agentgym.export import SCHEMA_VERSION

    left = ", ".join(f"{k} {v}" for k, v in report.dropped.items())
    typer.echo(f"wrote {report.trajectories} trajectories ({report.rows} rows, {report.format}) to {report.path} "
               f"(schema version {SCHEMA_VERSION})" + (f"; left out: {left}" if left else "")
               + (f"; {report.skipped_segments} segment(s) without recorded calls skipped"
                  if report.skipped_segments else ""))


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
    harness: Annotated[str | None, typer.Option(help="Also build this harness's layer on each task image "
                                                "(an id or a TOML spec's path).")] = None,
    tasks: Annotated[str, typer.Option(help="Comma-separated task ids (default: all).")] = "",
) -> None:
    """Build every task image (and with --harness the harness layer on top) ahead of a run.
    Unchanged build contexts are not rebuilt. Exits 1 when a build fails."""
    import time

    from agentgym.check import select_tasks
    from agentgym.harness import load_harness
    from agentgym.prebuild import prebuild
    from agentgym.runtime import get_backend
    from agentgym.runtime.docker import docker_available

    console = _console()
    try:
        env = load_env_target(target)
        selected = select_tasks(env, _task_ids(tasks))
        layer = load_harness(harness) if harness else None
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
    """Registered harnesses: dialect, streaming, version of the program, install size."""
    from agentgym import registries

    typer.echo(f"{'id':28s} {'dialect':10s} {'stream':6s} {'version':9s} {'install':>8s}  description")
    for id_, spec in registries.harnesses.items():
        try:
            cls = spec.load()
        except Exception as e:  # a broken plugin is listed, not fatal
            typer.echo(f"{id_:28s} (cannot load: {e})")
            continue
        size = getattr(cls, "install_mb", None)
        typer.echo(f"{id_:28s} {','.join(getattr(cls, 'dialects', ())):10s} "
                   f"{'yes' if getattr(cls, 'streams', False) else 'no':6s} {getattr(cls, 'version', '') or '-':9s} "
                   f"{'-' if size is None else f'{size:.0f} MB':>8s}  {spec.description}")


@check_app.command("harness")
def check_harness_cmd(
    target: Annotated[str, typer.Argument(metavar="ID|PATH", help="A harness id (see `agentgym harnesses list`) "
                                          "or a TOML harness spec's path.")],
    runtime: Annotated[str, typer.Option(help=RUNTIME_HELP)] = "auto",
    timeout: Annotated[float, typer.Option(help="Seconds the harness may run.")] = 300.0,
    out: Annotated[str, typer.Option(help="Where the call journal goes.")] = "runs/check-harness",
) -> None:
    """Run a harness once on a trivial task against a scripted engine, through the proxy, and
    print its dialect, streaming, calls, sub-agents, whether its session reconstructed into one
    segment (each break's reason if not), delivered_fraction and time to first call. Exits 1
    when it never called the model, did not end on its own or did not reconstruct."""
    from agentgym.harness import load_harness
    from agentgym.harness_check import check_harness, format_check
    from agentgym.runtime import get_backend

    try:
        harness = load_harness(target)
        backend = get_backend(runtime)
    except AgentGymError as e:
        _fail(e)
    typer.echo(f"checking {harness.id} on the {backend.name} runtime (the first run may build its image)")
    try:
        report = asyncio.run(check_harness(harness, backend, out_dir=out, timeout_s=timeout))
    except AgentGymError as e:
        _fail(e)
    finally:
        backend.close()
    typer.echo(format_check(report))
    if not report.ok:
        raise typer.Exit(code=1)


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
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help=VERBOSE_HELP)] = 0,
) -> None:
    """Write a self-contained HTML trajectory viewer (steps, tokens coloured by role, logprobs)."""
    from agentgym.console import configure_output

    configure_output(verbose)
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


@app.command("serve-rollouts")
def serve_rollouts(
    model: Annotated[str, typer.Option(help="'tiny', a checkpoint path, or vllm:<url>:<tokenizer>.")] = "tiny",
    port: Annotated[int, typer.Option()] = 8100,
    host: Annotated[str, typer.Option(help="Address to listen on (the API has no authentication).")] = "127.0.0.1",
    out: Annotated[str, typer.Option(help="Where batches write their runs (<out>/batches/<id>).")] = "runs/service",
    runtime: Annotated[str, typer.Option(help=RUNTIME_HELP)] = "auto",
    max_pending_groups: Annotated[int, typer.Option(help="Finished groups a batch holds for its reader before it "
                                                    "starts no more episodes.")] = 8,
    max_queued: Annotated[int, typer.Option(help="Batches that may wait (more: 429).")] = 16,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help=VERBOSE_HELP)] = 0,
) -> None:
    """Serve rollouts over HTTP for any trainer: submit tasks x samples at a policy version, read
    each task's trajectory group as it completes, cancel (docs/rollout-service.md). SIGTERM or
    Ctrl-C stop it: the running batch stops cleanly, its sandboxes removed."""
    import signal

    from agentgym.console import configure_output
    from agentgym.engines import load_engine
    from agentgym.rollout.service import RolloutService

    configure_output(verbose)

    async def main() -> None:
        engine = load_engine(model)
        service = RolloutService(engine, out, runtime=runtime, host=host, port=port,
                                 max_pending_groups=max_pending_groups, max_queued=max_queued)
        await service.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        typer.echo(f"serving rollouts of {engine.model_name} at {service.url}/v1/batches (runs in {out}/batches); "
                   "Ctrl-C to stop")
        try:
            await stop.wait()
        finally:
            await service.stop()
            await engine.aclose()

    asyncio.run(main())


def main() -> None:
    try:
        app()
    except AgentGymError as e:  # a last resort: errors say what to do, not a traceback
        typer.secho(f"error: {e}", fg=typer.colors.RED, err=True)
        sys.exit(2)
    except KeyboardInterrupt:  # Ctrl-C before a command took over its signals
        typer.secho("interrupted", fg=typer.colors.RED, err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
