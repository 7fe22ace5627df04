"""Checks /app/sorted against the expected layout (path -> sha256 of the content) and that
/app/inbox holds no file. AGENTGYM_ROOT is unset in a container (the local runtime sets it)."""

import hashlib
import os
import sys
from pathlib import Path

APP = Path(os.environ.get("AGENTGYM_ROOT", "") + "/app")
EXPECTED = {
    "csv/budget.csv": "fd7c9e928dc261f6ec3965c7e79f902ad1b88f340067509961a697c55d5f6fc9",
    "csv/data.csv": "159f8bae5fa563fb61b540de391850552f9fe1d188273b1ca9ce182e4cbf4a26",
    "gz/archive.tar.gz": "0c812367ab5c817784aca25d7b32f88bd32586c2662a4408e5670493be440560",
    "jpeg/photo copy.jpeg": "e6389161858d06006b3b9869152c8d38c5e66d3aaf30dd8a0a72bb4bdc30bde8",
    "jpg/photo.JPG": "37efe1b00d2a64715ccfa1cb7adcea4df3a343d693e99860aef3624d3df9acf9",
    "jpg/scan.jpg": "8f10f72eed87e4c5b7f66de25cbb2162301037d9374a190d3cc7a1e44556265e",
    "json/config.json": "589ea70eb20d88d594206c8f9bc39c35c91b8711d24b22f5e3daf69000d1887c",
    "other/.bashrc": "bd0f56b7a693b0d2ff0a98c8fc0bdc1e3cd558ba57afb607615bfb2a637d22b0",
    "other/LICENSE": "0e3619abeb9b05f6cc7bc135067e81d38dd1938c8e4b3c54587cbd5a938334df",
    "other/Makefile": "5aa7dd748ab9820437f87661507d87bec6c8d9442205a93de7d58c002c8c67fd",
    "other/README": "49ff8a159c339268d607076eae916603d1b587221696305542879da0561b60ad",
    "pdf/a-report.pdf": "a8c06b4d4ecafd49f7d7175fed1e7b5250a8ac4679136478d2e2027b1fb87725",
    "pdf/summary.pdf": "b771b4bd09586a408e008f096ab8c7c05229073d76af74b8e534571e9447f796",
    "sh/run.sh": "3f5e4b0f29e8fe3240d177f1d61a0fd806928a944dc6251d944e7ac06b81b6b2",
    "txt/minutes.txt": "55065da2e36e3a7b685a620d2630de62b3155966e355a66db5599eb9be794469",
    "txt/notes-copy.txt": "c3add20331e14d95039d06a692f770597120d7d81ec56a2871ca05eb67fc000f",
    "txt/todo.TXT": "d94273512138b05af27068b9a122f1f54d4a7872d5e94bd91d221261b335e2db",
}


def digest(path: Path) -> str:
    """sha256 of a regular file; anything else (a symlink, a FIFO) matches no expected content."""
    if path.is_symlink() or not path.is_file():
        return "not a regular file"
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> int:
    sorted_dir = APP / "sorted"
    if not sorted_dir.is_dir():
        print("FAIL: /app/sorted does not exist")
        return 1
    got = {p.relative_to(sorted_dir).as_posix(): digest(p)
           for p in sorted_dir.rglob("*") if p.is_symlink() or not p.is_dir()}
    ok = True
    for path in sorted(set(EXPECTED) - set(got)):
        print(f"FAIL: missing /app/sorted/{path}")
        ok = False
    for path in sorted(set(got) - set(EXPECTED)):
        print(f"FAIL: unexpected /app/sorted/{path}")
        ok = False
    for path in sorted(set(got) & set(EXPECTED)):
        if got[path] != EXPECTED[path]:
            print(f"FAIL: /app/sorted/{path} has the wrong content")
            ok = False
    left = [p for p in (APP / "inbox").rglob("*") if not p.is_dir()] if (APP / "inbox").is_dir() else []
    if left:
        print(f"FAIL: {len(left)} file(s) left under /app/inbox, e.g. {left[0].name}")
        ok = False
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
