"""The image of each GUI app: Debian's Xvfb, openbox, xdotool, Tk (and chromium for web apps),
the action server, and the app.

Every GUI image starts with the same package layer (identical Dockerfile text, so Docker builds
it once for all apps); a web app adds Debian's chromium and its policy file. The build context
(``container/`` as ``/opt/agentgym-gui``, the app as ``/opt/agentgym-gui/app``) is materialized
under ``<cache>/gui/contexts/`` and the image is tagged by its content, so the backend's
``ensure_image`` builds each once.

>>> print(dockerfile(browser=False).splitlines()[0])
FROM agentgym/base:bookworm
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from agentgym.paths import cache_dir
from agentgym.runtime.images import BASE_IMAGE, context_hash

__all__ = ["APPS_DIR", "CONTAINER_DIR", "AppImage", "app_image", "dockerfile"]

CONTAINER_DIR = Path(__file__).parent / "container"
"""What runs in every GUI container: the action server, the launcher, the Tk helper, openbox's rc."""
APPS_DIR = Path(__file__).parent / "apps"
"""One directory per app: its code and ``app.json`` (services, settle times, keys it refuses)."""
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc")

_BASE = f"""FROM {BASE_IMAGE}
# The first layer of every GUI image (identical text: docker builds it once).
RUN apt-get update && apt-get install -y --no-install-recommends xvfb openbox xdotool x11-utils python3-tk \\
    fonts-dejavu-core && rm -rf /var/lib/apt/lists/*
"""
_BROWSER = """RUN apt-get update && apt-get install -y --no-install-recommends chromium fonts-liberation \\
    && rm -rf /var/lib/apt/lists/*
COPY app/policies.json /etc/chromium/policies/managed/agentgym.json
"""
_TAIL = """COPY container /opt/agentgym-gui
COPY app /opt/agentgym-gui/app
ENV DISPLAY=:0
WORKDIR /root
"""


def dockerfile(browser: bool) -> str:
    return _BASE + (_BROWSER if browser else "") + _TAIL


@dataclass(frozen=True)
class AppImage:
    """The image of one app: its tag and the build context it is built from."""

    app: str
    image: str
    context: str


def app_image(app: str, browser: bool = False) -> AppImage:
    """The image of app ``app`` (``apps/<app>``), its context materialized in the cache."""
    contexts = cache_dir() / "gui" / "contexts"
    contexts.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=contexts))
    shutil.copytree(CONTAINER_DIR, tmp / "container", ignore=_IGNORE)
    shutil.copytree(APPS_DIR / app, tmp / "app", ignore=_IGNORE)
    (tmp / "Dockerfile").write_text(dockerfile(browser))
    digest = context_hash(tmp)
    final = contexts / f"{app}-{digest[:16]}"
    try:
        os.replace(tmp, final)
    except OSError:  # already there: same content by construction
        shutil.rmtree(tmp, ignore_errors=True)
    return AppImage(app=app, image=f"agentgym/gui-{app}:{digest[:12]}", context=str(final))
