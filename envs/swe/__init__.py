"""SWE-bench-style environments: repositories, issues, and grading by swebench's own code.

- :mod:`.instance` — the SWE-bench schema and its JSON/JSONL reader (:func:`load_instances`);
- :mod:`.repos` — the repositories and the image each one runs in;
- :mod:`.grading` — the verifier script and grading with swebench's parser and resolution status;
- :mod:`.env` — :class:`SWEEnv`, the environment (``swe/basic-v0``, or any instance file);
- :mod:`.buildrepo`, :mod:`.generate` — how the built-in repositories and instances are made.
"""

from agentgym.envs.swe.env import BUILTIN_INSTANCES, SWEEnv
from agentgym.envs.swe.instance import SWEInstance, load_instances

__all__ = ["BUILTIN_INSTANCES", "SWEEnv", "SWEInstance", "load_instances"]
