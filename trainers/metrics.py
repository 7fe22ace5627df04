"""Per-iteration metrics: ``<out>/metrics.jsonl`` (one line per iteration), TensorBoard event
files under ``<out>/tensorboard`` (the ``tensorboard`` package's writer), and a compact line on
stdout. A resumed run rewrites the file without the iterations it repeats, and TensorBoard
purges their events, so each iteration appears once.

>>> import tempfile
>>> log = MetricsLog(Path(tempfile.mkdtemp()), start_iteration=0, tensorboard=False, echo=False)
>>> log.write({"iteration": 0, "mean_reward": 0.25, "success_rate": 0.0})
>>> log.close()
>>> [m["iteration"] for m in read_metrics(log.path)]
[0]
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["MetricsLog", "format_line", "read_metrics"]


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The iterations logged so far (a torn last line from a crash is skipped)."""
    out = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                break
    return out


def _scalars(prefix: str, data: Mapping[str, Any]) -> dict[str, float]:
    flat: dict[str, float] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_scalars(f"{name}/", value))
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(float(value)):
            flat[name] = float(value)
    return flat


def format_line(m: Mapping[str, Any], iterations: int) -> str:
    """The compact stdout line of one iteration."""
    upd = m.get("update") or {}
    parts = [f"it {m['iteration'] + 1}/{iterations}",
             f"reward {m.get('mean_reward', 0):.2f} success {m.get('success_rate', 0):.2f}",
             f"groups {m.get('groups_trained', 0)}/{m.get('groups', 0)}"]
    if upd:
        parts.append(f"loss {upd.get('loss', 0):+.4f} kl {upd.get('ppo_kl', 0):.4f} "
                     f"clip {upd.get('pg_clipfrac', 0):.3f} ent {upd.get('entropy', 0):.2f} "
                     f"|g| {upd.get('grad_norm', 0):.2f}")
    else:
        parts.append(f"no update ({m.get('update_skipped_reason', '')})")
    parts.append(f"{m.get('episodes', 0)} ep {m.get('seconds_rollout', 0):.0f}s + {m.get('seconds_update', 0):.0f}s")
    tree = m.get("tree")
    if isinstance(tree, Mapping):
        parts.append(f"tree {tree.get('roots', 0)} roots + {tree.get('branches', 0)} branches, "
                     f"divergence {tree.get('divergence_rate', 0):.2f}")
    if "heldout_obs_nll" in m:
        parts.append(f"heldout obs nll {m['heldout_obs_nll']:.3f}")
    return " | ".join(parts)


class MetricsLog:
    """Appends iterations to ``metrics.jsonl`` and TensorBoard, starting at ``start_iteration``
    (lines of later iterations left by an interrupted run are dropped first)."""

    def __init__(self, out: Path, *, start_iteration: int, tensorboard: bool = True, echo: bool = True,
                 iterations: int = 0) -> None:
        self.path = Path(out) / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept = [m for m in read_metrics(self.path) if m.get("iteration", -1) < start_iteration]
        tmp = self.path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(json.dumps(m) + "\n" for m in kept))
        tmp.replace(self.path)
        self.echo = echo
        self.iterations = iterations
        self.writer: Any = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(Path(out) / "tensorboard"), purge_step=start_iteration)

    def write(self, metrics: Mapping[str, Any]) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(metrics, sort_keys=True, default=float) + "\n")
            f.flush()
        if self.writer is not None:
            step = int(metrics["iteration"])
            for name, value in _scalars("", metrics).items():
                if name != "iteration":
                    self.writer.add_scalar(name, value, step)
            self.writer.flush()
        if self.echo:
            print(format_line(metrics, self.iterations), flush=True)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
