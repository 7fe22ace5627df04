"""Images: what a layer adds to a task image, content hashes of build contexts, ``docker build``
with readable failures, and the per-run cache that builds each (task image, harness) once.

A harness installs itself as an :class:`ImageLayer` (Dockerfile lines on top of the task's
image, plus host files for the build context). :class:`ImageCache` turns (task, harness) into a
runnable image tag, building ``FROM <task image>`` + layer once per run even when many episodes
of one task start together. Backends without images (the local runtime) run ``task.image``
unchanged (``None``).

>>> layer = ImageLayer(dockerfile="RUN true", cache_key="demo-1")
>>> layer_tag("agentgym/harbor-hello-file:latest", "acme/agent-v0")
'agentgym/acme-agent-v0:agentgym-harbor-hello-file-latest'
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from agentgym.errors import AgentGymError, RuntimeError_
from agentgym.runtime.base import RuntimeBackend
from agentgym.types import Task

__all__ = [
    "BASE_IMAGE",
    "LABEL_CONTEXT_HASH",
    "ImageBuildError",
    "ImageCache",
    "ImageLayer",
    "build_image",
    "context_hash",
    "dockerfile_base_images",
    "layer_tag",
]

BASE_IMAGE = "agentgym/base:bookworm"
"""The image every built-in task builds on, made from Debian packages (``agentgym setup``)."""
LABEL_CONTEXT_HASH = "agentgym.context_hash"
"""Image label: hash of the build context (and base image ids) the image was built from."""


@dataclass(frozen=True)
class ImageLayer:
    """Dockerfile lines to add on top of a task image (``FROM <task image>`` is prepended),
    plus host files to put in the build context (context name -> host path)."""

    dockerfile: str
    context_files: Mapping[str, str] = field(default_factory=dict)
    cache_key: str = ""
    """Changes when the layer's content changes (part of the derived image tag)."""


class ImageBuildError(RuntimeError_):
    """``docker build`` failed. ``step`` is the Dockerfile step that failed, ``log`` the tail."""

    def __init__(self, message: str, step: str = "", log: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.step = step
        self.log = log

    def __reduce__(self) -> tuple[Any, ...]:  # picklable with the extra fields
        return (type(self), (self.message, self.step, self.log))


def context_hash(dockerfile_dir: str | os.PathLike[str], extra: Iterable[str] = ()) -> str:
    """sha256 over every file's relative path, executable bit and content (sorted), plus ``extra``."""
    root = Path(dockerfile_dir)
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() or p.is_symlink()):
        rel = path.relative_to(root).as_posix()
        h.update(rel.encode() + b"\0")
        if path.is_symlink():
            h.update(b"L" + os.readlink(path).encode() + b"\0")
            continue
        h.update(b"x" if os.access(path, os.X_OK) else b"-")
        h.update(hashlib.sha256(path.read_bytes()).digest())
    for item in extra:
        h.update(item.encode() + b"\0")
    return h.hexdigest()


_FROM_RE = re.compile(r"^\s*FROM\s+(?:--\S+\s+)*(?P<image>\S+)(?:\s+AS\s+(?P<stage>\S+))?", re.I | re.M)
_COPY_FROM_RE = re.compile(r"^\s*(?:COPY|ADD)\s+(?:--\S+\s+)*?--from=(?P<image>\S+)", re.I | re.M)


def dockerfile_base_images(dockerfile: str) -> list[str]:
    """Images named in ``FROM`` lines and ``COPY --from=<image>``, minus references to build
    stages (by name or index) and ``scratch``.

    >>> dockerfile_base_images("FROM python:3.12-slim AS b\\nCOPY --from=ghcr.io/astral-sh/uv:0.9.7 /uv /x\\n"
    ...                        "FROM b\\nCOPY --from=b /a /a\\n")
    ['python:3.12-slim', 'ghcr.io/astral-sh/uv:0.9.7']
    """
    stages: set[str] = set()
    images: list[str] = []
    events = sorted([(m.start(), "from", m) for m in _FROM_RE.finditer(dockerfile)]
                    + [(m.start(), "copy", m) for m in _COPY_FROM_RE.finditer(dockerfile)], key=lambda e: e[0])
    for _, kind, m in events:
        image = m.group("image")
        if image.lower() not in stages and image != "scratch" and not image.isdigit() and image not in images:
            images.append(image)
        if kind == "from" and m.group("stage"):
            stages.add(m.group("stage").lower())
    return images


def build_image(api: Any, image: str, ctx: Path, digest: str) -> None:
    """``docker build`` of ``ctx`` as ``image`` (host network, nothing pulled), labelled with
    ``digest``; :class:`ImageBuildError` names the failing step and the output's tail."""
    step = ""
    log: list[str] = []
    try:
        for chunk in api.build(path=str(ctx), tag=image, network_mode="host", rm=True,
                                           forcerm=True, pull=False, decode=True,
                                           labels={LABEL_CONTEXT_HASH: digest}):
            if "stream" in chunk:
                for line in str(chunk["stream"]).splitlines():
                    if line.startswith("Step "):
                        step = line.strip()
                    if line.strip():
                        log.append(line)
                del log[:-40]
            if "error" in chunk or "errorDetail" in chunk:
                detail = chunk.get("errorDetail", {}).get("message") or chunk.get("error")
                tail = "\n".join(log[-20:])
                raise ImageBuildError(
                    f"building {image} from {ctx / 'Dockerfile'} failed at {step or 'an unknown step'}: "
                    f"{detail}\n--- last build output ---\n{tail}", step=step, log=tail)
    except ImageBuildError:
        raise
    except Exception as e:
        raise ImageBuildError(f"building {image} from {ctx / 'Dockerfile'} failed at "
                              f"{step or 'start'}: {e}", step=step, log="\n".join(log[-20:])) from e


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9_.-]+", "-", text.lower()).strip("-")[:60] or "x"


def layer_tag(base: str, harness_id: str) -> str:
    """The tag of ``base`` + the layer of harness ``harness_id``."""
    return f"agentgym/{slug(harness_id.replace('/', '-'))}:{slug(base.replace('/', '-').replace(':', '-'))}"


class Layered(Protocol):
    """What :class:`ImageCache` needs of a harness."""

    id: ClassVar[str]

    def image_layer(self) -> ImageLayer | None: ...


class ImageCache:
    """Builds each (task image, harness layer) image once per run, even when many episodes of
    the same task start at once. ``on_status`` hears what is being prepared (for progress UIs)."""

    def __init__(self, backend: RuntimeBackend, on_status: Callable[[str], None] | None = None) -> None:
        self.backend = backend
        self.on_status = on_status or (lambda msg: None)
        self._done: dict[tuple[str, str], str] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self.seconds: dict[tuple[str, str], float] = {}
        """Seconds each (image, harness layer) took to prepare: a build, or the check that an
        up-to-date image is already there (run summaries report it apart from episode time)."""

    async def image_for(self, task: Task, harness: Layered) -> str | None:
        """The tag to run: the task's image (built when needed) plus the harness's layer
        (``harness.image_layer()`` runs in a thread: it may download wheels)."""
        if not self.backend.uses_images:
            return task.image
        if task.image is None:
            raise AgentGymError(f"task {task.id} has no image; the {self.backend.name} runtime needs one")
        image, dockerfile_dir, layer_id, layer = task.image, task.dockerfile_dir, harness.id, harness.image_layer
        key = (image, layer_id)
        async with self._locks.setdefault(key, asyncio.Lock()):
            if key not in self._done:
                self.on_status(f"preparing image {image} + {layer_id} (the first build can take minutes)")
                t0 = time.perf_counter()
                try:
                    self._done[key] = await self._build(image, dockerfile_dir, layer_id, layer)
                finally:
                    self.seconds[key] = time.perf_counter() - t0
                self.on_status("")
        return self._done[key]

    async def _build(self, image: str, dockerfile_dir: str | None, layer_id: str,
                     layer_fn: Callable[[], ImageLayer | None]) -> str:
        base = await self.backend.ensure_image(image, dockerfile_dir)
        layer = await asyncio.to_thread(layer_fn)
        if layer is None:
            return base
        with tempfile.TemporaryDirectory(prefix="agentgym-layer-") as tmp:
            ctx = Path(tmp)
            (ctx / "Dockerfile").write_text(f"FROM {base}\n{layer.dockerfile}\n")
            for name, src in layer.context_files.items():
                dst = ctx / name
                if Path(src).is_dir():
                    shutil.copytree(src, dst)
                else:
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(src, dst)
            return await self.backend.ensure_image(layer_tag(base, layer_id), str(ctx))
