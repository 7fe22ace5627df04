"""The trusted system paths' cache: classification of changes, and deduplication across images."""

from __future__ import annotations

import os
from pathlib import Path

from agentgym.runtime.trusted import classify_change, deduplicate


def test_changes_are_classified_by_what_they_touch() -> None:
    assert classify_change("/usr/local/bin/bash", 1) == ["system-path: added /usr/local/bin/bash"]
    assert classify_change("/etc/ld.so.preload", 1) == ["system-path: added /etc/ld.so.preload"]
    assert classify_change("/etc/python3.11/sitecustomize.py", 0) == ["system-path: modified /etc/python3.11/sitecustomize.py"]
    assert classify_change("/logs/verifier/reward.txt", 1)[0].startswith("reward-file:")
    assert classify_change("/etc/passwd", 0) == [] and classify_change("/app/x", 1) == []


def test_identical_files_of_two_images_share_one_copy(tmp_path: Path) -> None:
    for image in ("a", "b"):
        d = tmp_path / image / "usr" / "bin"
        d.mkdir(parents=True)
        (d / "same").write_bytes(b"x" * 1000)
        (d / "own").write_bytes(image.encode() * 10)
        (d / "mode").write_bytes(b"m")
    (tmp_path / "b" / "usr" / "bin" / "mode").chmod(0o755)
    store = tmp_path / "objects"
    assert deduplicate(tmp_path / "a", store) == 0
    assert deduplicate(tmp_path / "b", store) == 1000
    a, b = tmp_path / "a" / "usr" / "bin", tmp_path / "b" / "usr" / "bin"
    assert os.path.samefile(a / "same", b / "same") and (b / "same").read_bytes() == b"x" * 1000
    assert not os.path.samefile(a / "own", b / "own")
    assert not os.path.samefile(a / "mode", b / "mode")  # same bytes, other mode: kept apart
