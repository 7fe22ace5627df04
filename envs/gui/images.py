"""The one image of the GUI suite: Debian's Xvfb, openbox, xdotool, Tk and chromium, the action
server, and every app.

All tasks share it (one build, one export of its system paths for the sealed verifier): the
task picks its app with ``AGENTGYM_GUI_APP=/opt/agentgym-gui/apps/<app>``. The Debian packages
come first, in a layer of their own, so editing an app or the action server rebuilds only the
last ``COPY``. The build context (``container/`` as ``/opt/agentgym-gui``, ``apps/`` as
``/opt/agentgym-gui/apps``) is materialized under ``<cache>/gui/contexts/`` and the image is
tagged by its content, so the backend's ``ensure_image`` builds it once.

>>> print(DOCKERFILE.splitlines()[0])
FROM agentgym/base:bookworm
>>> app_dir("form")
'/opt/agentgym-gui/apps/form'
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from agentgym.paths import cache_dir
from agentgym.runtime.images import BASE_IMAGE, context_hash

__all__ = ["APPS_DIR", "CONTAINER_DIR", "DOCKERFILE", "PACKAGES", "GuiImage", "app_dir", "gui_image"]

CONTAINER_DIR = Path(__file__).parent / "container"
"""What runs in every GUI container: the action server, the launcher, the Tk helper, openbox's rc."""
APPS_DIR = Path(__file__).parent / "apps"
"""One directory per app: its code and ``app.json`` (services, settle times, keys it refuses)."""
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc")

PACKAGES = ("xvfb", "openbox", "xdotool", "x11-utils", "python3-tk", "fonts-dejavu-core", "chromium",
            "fonts-liberation")
"""Debian packages of the image (``--no-install-recommends``)."""

DOCKERFILE = f"""FROM {BASE_IMAGE}
RUN apt-get update && apt-get install -y --no-install-recommends {' '.join(PACKAGES)} \\
    && rm -rf /var/lib/apt/lists/*
COPY container /opt/agentgym-gui
COPY apps /opt/agentgym-gui/apps
# chromium's managed policy: only the page served in the container, no devtools, downloads, printing.
RUN mkdir -p /etc/chromium/policies/managed \\
    && cp /opt/agentgym-gui/chromium-policies.json /etc/chromium/policies/managed/agentgym.json
ENV DISPLAY=:0
WORKDIR /root
"""


def app_dir(app: str) -> str:
    """Where app ``app`` is in the image (the task's ``AGENTGYM_GUI_APP``)."""
    return f"/opt/agentgym-gui/apps/{app}"


@dataclass(frozen=True)
class GuiImage:
    """The suite's image: its tag and the build context it is built from."""

    image: str
    context: str


def gui_image() -> GuiImage:
    """The suite's image, its context materialized in the cache (same content, same tag)."""
    contexts = cache_dir() / "gui" / "contexts"
    contexts.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=contexts))
    shutil.copytree(CONTAINER_DIR, tmp / "container", ignore=_IGNORE)
    shutil.copytree(APPS_DIR, tmp / "apps", ignore=_IGNORE)
    (tmp / "Dockerfile").write_text(DOCKERFILE)
    digest = context_hash(tmp)
    final = contexts / digest[:16]
    try:
        os.replace(tmp, final)
    except OSError:  # already there: same content by construction
        shutil.rmtree(tmp, ignore_errors=True)
    return GuiImage(image=f"agentgym/gui:{digest[:12]}", context=str(final))
