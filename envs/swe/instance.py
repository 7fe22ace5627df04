"""SWE-bench instances: the schema, and reading them from JSON or JSONL files.

A row is a SWE-bench instance::

    instance_id              "agentgym__textkit-7" (owner__repo-number)
    repo                     "agentgym/textkit"
    base_commit              the commit the agent starts from (hex)
    problem_statement        the issue text the agent is given
    FAIL_TO_PASS             tests the fix must make pass (pytest node ids)
    PASS_TO_PASS             tests that must keep passing
    patch                    the reference fix (source files only)
    test_patch               the tests that grade it, applied by the verifier, never shown
    hints_text, created_at, version, environment_setup_commit   recorded, not used to grade

``FAIL_TO_PASS``/``PASS_TO_PASS`` are JSON-encoded lists in SWE-bench's own files and plain
lists in SWE-Gym's and SWE-smith's; both read the same. Rows may also carry swebench's newer
columns ``log_parser`` (a name in swebench's ``PARSER_REGISTRY``, default ``parse_log_pytest``),
``eval_type`` (default ``pass_and_fail``) and ``eval_script`` (the script that applies the test
patch and runs the tests; generated when absent). Other columns are kept in
:attr:`SWEInstance.extra` and named by :func:`ignored_fields`; SWE-smith's ``image_name``, for
example, names a prebuilt image this loader does not pull.

A file that cannot be read as instances raises :class:`~agentgym.errors.EnvError` naming the
file, the line and the field at fault.

>>> row = {"instance_id": "demo__lib-1", "repo": "demo/lib", "base_commit": "0" * 40,
...        "problem_statement": "It breaks.", "FAIL_TO_PASS": '["tests/test_a.py::test_x"]',
...        "PASS_TO_PASS": [], "image_name": "demo:latest"}
>>> inst = parse_instance(row, "<doc>")
>>> inst.fail_to_pass, inst.test_files, ignored_fields([inst])
(('tests/test_a.py::test_x',), ('tests/test_a.py',), {'image_name': ['demo__lib-1']})
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentgym.errors import EnvError

__all__ = ["KNOWN_FIELDS", "REQUIRED_FIELDS", "SWEInstance", "ignored_fields", "load_instances", "parse_instance"]

REQUIRED_FIELDS = ("instance_id", "repo", "problem_statement", "FAIL_TO_PASS", "PASS_TO_PASS")
"""Without these a row is not an instance (a SWE-smith row without ``base_commit`` still loads,
and says why it cannot run: :attr:`SWEInstance.unsupported`)."""
KNOWN_FIELDS = (*REQUIRED_FIELDS, "base_commit", "patch", "test_patch", "hints_text", "created_at", "version",
                "environment_setup_commit", "log_parser", "eval_type", "eval_script")
_HEX = re.compile(r"^[0-9a-f]{7,40}$")
_DIFF_PATH = re.compile(r"^diff --git a/(\S+) b/(\S+)$", re.M)
_NEW_FILE = re.compile(r"^diff --git a/\S+ b/(\S+)\nnew file mode", re.M)
_EVAL_TYPES = ("pass_and_fail", "fail_only")


@dataclass(frozen=True)
class SWEInstance:
    """One SWE-bench instance (see the module docstring for the fields)."""

    instance_id: str
    repo: str
    problem_statement: str
    fail_to_pass: tuple[str, ...]
    pass_to_pass: tuple[str, ...]
    base_commit: str = ""
    patch: str = ""
    test_patch: str = ""
    hints_text: str = ""
    created_at: str = ""
    version: str = ""
    environment_setup_commit: str = ""
    log_parser: str = "parse_log_pytest"
    eval_type: str = "pass_and_fail"
    eval_script: str = ""
    """The row's own eval script (swebench's newer datasets carry one); empty: generated."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Columns this loader does not use, as they were."""
    source: str = ""
    """Where the row came from (``file:line``)."""

    @property
    def test_files(self) -> tuple[str, ...]:
        """The files the graded tests live in (the part of each test id before ``::``)."""
        return tuple(dict.fromkeys(t.split("::", 1)[0] for t in (*self.fail_to_pass, *self.pass_to_pass)))

    @property
    def test_patch_files(self) -> tuple[str, ...]:
        """The files ``test_patch`` touches (swebench resets these to ``base_commit`` first)."""
        return tuple(dict.fromkeys(b for _, b in _DIFF_PATH.findall(self.test_patch)))

    @property
    def test_patch_new_files(self) -> tuple[str, ...]:
        """The files ``test_patch`` creates (removed before it applies, so an agent's file of
        the same name cannot stand in for it)."""
        return tuple(dict.fromkeys(_NEW_FILE.findall(self.test_patch)))

    @property
    def unsupported(self) -> str | None:
        """Why this instance cannot be run from its fields alone, or ``None``."""
        if not self.base_commit:
            image = self.extra.get("image_name") or self.extra.get("image")
            hint = (f" (a SWE-smith row: its task lives on a branch of the repository mirror in the prebuilt "
                    f"image {image!r}, which agentgym does not pull)") if image else ""
            return f"the row has no base_commit{hint}; give the commit the agent starts from"
        return None

    def row(self) -> dict[str, Any]:
        """The instance as a SWE-bench row (test lists JSON-encoded, as in SWE-bench's files)."""
        out: dict[str, Any] = {
            "repo": self.repo, "instance_id": self.instance_id, "base_commit": self.base_commit,
            "patch": self.patch, "test_patch": self.test_patch, "problem_statement": self.problem_statement,
            "hints_text": self.hints_text, "created_at": self.created_at, "version": self.version,
            "FAIL_TO_PASS": json.dumps(list(self.fail_to_pass)), "PASS_TO_PASS": json.dumps(list(self.pass_to_pass)),
            "environment_setup_commit": self.environment_setup_commit,
        }
        if self.log_parser != "parse_log_pytest":
            out["log_parser"] = self.log_parser
        if self.eval_type != "pass_and_fail":
            out["eval_type"] = self.eval_type
        if self.eval_script:
            out["eval_script"] = self.eval_script
        return {**out, **self.extra}


def _tests(row: Mapping[str, Any], name: str, where: str) -> tuple[str, ...]:
    value = row[name]
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else []
        except ValueError as e:
            raise EnvError(f"{where}: {name} is a string but not a JSON list of test ids: {e}") from e
    if not isinstance(value, list) or not all(isinstance(t, str) and t for t in value):
        raise EnvError(f"{where}: {name} must be a list of test ids (strings), got {type(value).__name__}")
    return tuple(value)


def _text(row: Mapping[str, Any], name: str, where: str) -> str:
    value = row.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise EnvError(f"{where}: {name} must be a string, got {type(value).__name__}")
    return value


def parse_instance(row: Any, where: str) -> SWEInstance:
    """One row as a :class:`SWEInstance`; :class:`EnvError` names ``where`` and the fault."""
    if not isinstance(row, Mapping):
        raise EnvError(f"{where}: an instance must be a JSON object, got {type(row).__name__}")
    missing = [name for name in REQUIRED_FIELDS if name not in row or row[name] is None]
    if missing:
        ident = row.get("instance_id")
        raise EnvError(f"{where}{f' ({ident})' if ident else ''}: missing required field(s) {', '.join(missing)} "
                       f"(a SWE-bench instance needs {', '.join(REQUIRED_FIELDS)})")
    texts = {name: _text(row, name, where) for name in KNOWN_FIELDS
             if name not in ("FAIL_TO_PASS", "PASS_TO_PASS", "version")}
    for name in ("instance_id", "repo", "problem_statement"):
        if not texts[name].strip():
            raise EnvError(f"{where}: {name} is empty")
    fail_to_pass = _tests(row, "FAIL_TO_PASS", where)
    if not fail_to_pass:
        raise EnvError(f"{where} ({texts['instance_id']}): FAIL_TO_PASS is empty, so nothing would grade a fix")
    base = texts["base_commit"].strip()
    if base and not _HEX.match(base):
        raise EnvError(f"{where} ({texts['instance_id']}): base_commit {base!r} is not a commit hash")
    eval_type = texts["eval_type"] or "pass_and_fail"
    if eval_type not in _EVAL_TYPES:
        raise EnvError(f"{where}: eval_type must be one of {', '.join(_EVAL_TYPES)}, got {eval_type!r}")
    extra = {k: v for k, v in row.items() if k not in KNOWN_FIELDS}
    return SWEInstance(
        instance_id=texts["instance_id"], repo=texts["repo"], problem_statement=texts["problem_statement"],
        fail_to_pass=fail_to_pass, pass_to_pass=_tests(row, "PASS_TO_PASS", where), base_commit=base,
        patch=texts["patch"], test_patch=texts["test_patch"], hints_text=texts["hints_text"],
        created_at=texts["created_at"], version=str(row.get("version") or ""),
        environment_setup_commit=texts["environment_setup_commit"],
        log_parser=texts["log_parser"] or "parse_log_pytest", eval_type=eval_type, eval_script=texts["eval_script"],
        extra=extra, source=where)


def _rows(path: Path) -> Iterable[tuple[Any, str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise EnvError(f"cannot read SWE instances from {path}: {e}") from e
    except UnicodeDecodeError as e:
        raise EnvError(f"{path} is not UTF-8 text: {e}") from e
    stripped = text.lstrip()
    if path.suffix == ".json" or stripped.startswith("["):
        try:
            data = json.loads(text)
        except ValueError as e:
            raise EnvError(f"{path}: invalid JSON: {e}") from e
        items = data if isinstance(data, list) else [data]
        for i, item in enumerate(items):
            yield item, f"{path}[{i}]"
        return
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield json.loads(line), f"{path}:{lineno}"
        except ValueError as e:
            raise EnvError(f"{path}:{lineno}: invalid JSON line ({e}); a .jsonl file holds one instance "
                           "object per line") from e


def load_instances(path: str | os.PathLike[str], instance_ids: Sequence[str] | None = None) -> list[SWEInstance]:
    """Read a SWE-bench-style ``.jsonl`` (one object per line) or ``.json`` (a list of objects,
    or one object) file; keep ``instance_ids`` (in that order) when given."""
    source = Path(path)
    instances: list[SWEInstance] = []
    seen: dict[str, str] = {}
    for row, where in _rows(source):
        inst = parse_instance(row, where)
        if inst.instance_id in seen:
            raise EnvError(f"{where}: instance_id {inst.instance_id!r} already appears at {seen[inst.instance_id]}")
        seen[inst.instance_id] = where
        instances.append(inst)
    if not instances:
        raise EnvError(f"{source} holds no instances")
    if instance_ids is None:
        return instances
    by_id = {inst.instance_id: inst for inst in instances}
    unknown = [i for i in instance_ids if i not in by_id]
    if unknown:
        raise EnvError(f"no instance {', '.join(map(repr, unknown))} in {source}; it has: {', '.join(by_id)}")
    return [by_id[i] for i in instance_ids]


def ignored_fields(instances: Iterable[SWEInstance]) -> dict[str, list[str]]:
    """Columns this loader does not use -> the instances that carry them."""
    out: dict[str, list[str]] = {}
    for inst in instances:
        for name in inst.extra:
            out.setdefault(name, []).append(inst.instance_id)
    return out
