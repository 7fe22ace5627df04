"""Checks for archive-backup: the backup's file members and their bytes, the unpacked release,
and untouched originals. AGENTGYM_ROOT is unset in a container (the local runtime sets it)."""

import hashlib
import os
import sys
import tarfile
from pathlib import Path

APP = Path(os.environ.get("AGENTGYM_ROOT", "") + "/app")
DATA = {
    "data/artifacts/RELEASE.md": "e879193b06de4bbbe6ebbb29bd6300b356a122c036b993a72fce4b467afef4be",
    "data/artifacts/app.bin": "6c35a64e11430b334d13d8ef57d57b8ec9c34825ff5672d29c6d621c4a3be605",
    "data/artifacts/build.log": "5c3d57cf803c92ff537694cda191d9c10c44f33c39eaf5f45e91e34f6413e254",
    "data/cache/page.txt.tmp": "354a13d8ccbecdad438857ce210af3ebea77efdcb33f49f469ea57db0990ce65",
    "data/cache/session.tmp": "fae379b2920b02b4c85110eb4d3f42a9997e669c96b15423f9af8cdfd9775098",
    "data/docs/api/items.md": "3c276f86ebb731d494fbe2cfd4b15fe72682ce39c899b768c423b27f44ff379c",
    "data/docs/index.md": "30e68ad77e1adb7e2f7fbbfcbc83f571fcb8979f62269e8abd2a3de5a092b089",
    "data/notes/list.txt.bak": "64e8b4904a14b471f55cf465188af5ccb6daa6c4312f20c6bd3a52c73ef63077",
    "data/notes/meeting notes.txt": "748960d169d9796fc29afb76bd617ca9f3d3a53a6d05b25662d876cdcc084c33",
    "data/notes/todo.txt": "8fffda4c55f9f7aeab43f899bc1fd8cc3c02da68b63e99e5b18907e251e7883e",
    "data/readme.txt": "eca9740d70dbbc3c5cf564597a20b5c35e64cb90fbc366d2eb02c8f0bed382f8",
}
BACKUP = {k: v for k, v in DATA.items() if k.endswith((".txt", ".md"))}
RELEASE = {
    "release-2.1/VERSION": "c89b87c262e9d5ffd20e73aac74a1772adcc9f5a21682cc33adcf5086e5fef5c",
    "release-2.1/bin/run.sh": "b5fdfd448a06b2fc75066ae39e4d6a469d547a358587db93aaebf92fc9950d79",
    "release-2.1/conf/app.ini": "5174759dcdc185cda93cf595e1f362e4aadeb689dfd6a78c1a5e504f9c227c73",
    "release-2.1/NOTES.txt": "007d87f6fdf82562bf740487e06f56a78a5c00f49e833083edbe5b865d886eb7",
}
ZIP_SHA256 = "cd44a37bfa9aa4dbd7086f3d1198b420fd043108bcb07ffd06258bd037c12b02"
failures: list[str] = []


def check(ok: bool, what: str) -> None:
    print(("PASS: " if ok else "FAIL: ") + what)
    if not ok:
        failures.append(what)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def regular(path: Path) -> bool:
    return path.is_file() and not path.is_symlink()


def backup_members(path: Path) -> dict[str, str] | None:
    """Regular-file members (normalised name -> sha256), or None when not a .tar.gz."""
    with path.open("rb") as f:
        if f.read(2) != b"\x1f\x8b":
            return None
    try:
        with tarfile.open(path, "r:gz") as tar:
            out = {}
            for m in tar.getmembers():
                if m.isdir():
                    continue
                name = m.name.removeprefix("./")
                data = tar.extractfile(m).read() if m.isfile() else b"<not a regular file>"
                out[name] = sha(data)
            return out
    except (tarfile.TarError, OSError, EOFError):
        return None


def main() -> int:
    present = {rel: sha((APP / rel).read_bytes()) for rel in DATA if regular(APP / rel)}
    check(present == DATA, "the files of /app/data are all there, unchanged")
    backup = APP / "backup.tar.gz"
    members = backup_members(backup) if regular(backup) else None
    check(members is not None, "/app/backup.tar.gz is a gzip-compressed tar archive")
    if members is not None:
        check(set(members) == set(BACKUP), "the backup holds exactly the .txt and .md files of data/ "
              f"(missing: {sorted(set(BACKUP) - set(members))}, extra: {sorted(set(members) - set(BACKUP))})")
        wrong = sorted(k for k in set(members) & set(BACKUP) if members[k] != BACKUP[k])
        check(not wrong, f"every backed-up file has its original bytes (wrong: {wrong})")
    zipped = APP / "incoming.zip"
    check(regular(zipped) and sha(zipped.read_bytes()) == ZIP_SHA256, "/app/incoming.zip is kept as it was")
    incoming = APP / "incoming"
    got = ({p.relative_to(incoming).as_posix(): sha(p.read_bytes()) if regular(p) else "not a regular file"
            for p in incoming.rglob("*") if not p.is_dir() or p.is_symlink()} if incoming.is_dir() else {})
    check(got == RELEASE, f"/app/incoming holds the zip's files at their paths (found: {sorted(got)})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
