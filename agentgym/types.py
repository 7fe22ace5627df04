"""The data model: one vocabulary for every boundary.

Every record is a frozen dataclass. Token sequences are tuples so a record can be hashed,
shared across threads and written to disk without defensive copies. See
``ARCHITECTURE.md`` ("Data model") for how the pieces relate::

    Task ──rollout──► Calls (proxy journal) ──reconstruct──► Trajectory ──► TrajectoryGroup
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

JSON = dict[str, Any]


class StopReason(str, enum.Enum):
    """Why an episode ended. A failed rollout is data: it keeps its stop reason and error."""

    COMPLETED = "completed"
    """The harness exited on its own with status 0."""
    STEP_LIMIT = "step_limit"
    """The harness (or the proxy) hit the task's step limit."""
    TIMEOUT = "timeout"
    """The episode ran past the task's wall-clock limit and was killed."""
    HARNESS_ERROR = "harness_error"
    """The harness exited non-zero or crashed."""
    KILLED = "killed"
    """The harness process was killed from outside (signal), not by our timeout."""
    OOM = "oom"
    """The container ran out of memory."""
    RUNTIME_ERROR = "runtime_error"
    """The sandbox could not be started or stopped answering."""
    ENGINE_ERROR = "engine_error"
    """The policy engine failed to serve a call."""
    EVAL_ERROR = "eval_error"
    """The environment's verifier could not score the episode (it crashed, timed out or wrote
    no reward): the episode is unscorable, not reward 0."""

    @property
    def outside_the_agent(self) -> bool:
        """The episode ended for a reason outside the agent (the sandbox, the engine or the
        verifier failed): unscorable, left out of training and retried when a run resumes."""
        return self in (StopReason.RUNTIME_ERROR, StopReason.ENGINE_ERROR, StopReason.EVAL_ERROR)
    CONTEXT_OVERFLOW = "context_overflow"
    """The harness stopped after the proxy answered its last request with a context-length error
    (the conversation outgrew the model's context and the harness did not compact it)."""
    CANCELLED = "cancelled"
    """The rollout cancelled the episode before it ended: its group already had the samples it
    asked for (over-provisioning, :class:`agentgym.rollout.schedule.Overprovision`). Its calls so
    far are kept as data; it is not trained on by default (no reward: it never ended)."""


class BreakReason(str, enum.Enum):
    """Why a segment starts here instead of extending the previous one.

    The proxy decides this when it serves a call; the reconstructor turns it into a segment
    boundary. Never a silent re-tokenisation: whenever the exact token prefix cannot be kept,
    the reason is recorded.
    """

    START = "start"
    """First call of a lineage whose messages share nothing with any earlier call."""
    HISTORY_EDITED = "history_edited"
    """An earlier non-assistant message (tool output, user turn, system prompt) was changed or dropped
    (compaction, truncation, edited tool output)."""
    ASSISTANT_EDITED = "assistant_edited"
    """The harness sent back an assistant message that differs from what the engine produced
    (stripped reasoning, rewritten tool call)."""
    TEMPLATE_NOT_PREFIX = "template_not_prefix"
    """The messages extend an earlier call, but the chat template renders the earlier turns
    differently once later turns are present, so the earlier token ids cannot be reused."""
    BRANCH = "branch"
    """A second continuation of a call that another call already continued (a retry or a fork).
    Its shared prefix is context only in the new segment: each sampled token is trained once."""
    UNDELIVERED_PARENT = "undelivered_parent"
    """The earlier call was never delivered to the harness (client went away)."""
    RETRY = "retry"
    """The same prompt as an earlier call of the lineage (the harness asked again). Of calls with
    one prompt only one is trained: the one a later call continues, else the last delivered."""


class Divergence(str, enum.Enum):
    """Why a branch stopped replaying its parent's recorded calls (see :mod:`agentgym.proxy.replay`).

    A branch of episode E at call ``t`` runs the same harness on the same task in a fresh runtime
    while the proxy answers its first ``t`` calls with E's recorded completions. That is only the
    same episode prefix when the harness sends the same requests; when it does not (the harness
    or the environment is not deterministic), the call where it differs is sampled instead and
    carries one of these, and every later call is sampled too.
    """

    PROMPT_DIFFERS = "prompt_differs"
    """The request rendered to other prompt ids than the recorded call's (different messages,
    tools or tool output)."""
    AGENT_DIFFERS = "agent_differs"
    """The request came from another agent (lineage) than the recorded call."""
    ENDED_EARLY = "ended_early"
    """The harness ended before it asked for every recorded call (set on the trajectory's
    ``metadata["branch"]`` only: there is no call to carry it)."""


@dataclass(frozen=True)
class SamplingParams:
    """Sampling controls shared by every engine."""

    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 256
    stop: tuple[str, ...] = ()
    seed: int | None = None


@dataclass(frozen=True)
class TaskLimits:
    """Resource limits of one episode."""

    timeout_s: float = 600.0
    max_steps: int = 30
    memory: str | None = "2g"
    cpus: float | None = None
    pids: int | None = None
    """Most processes the sandbox may hold (``None``: the backend's default)."""


@dataclass(frozen=True)
class Task:
    """One thing to do, in one environment."""

    id: str
    instruction: str
    env: str
    """Environment id (``namespace/name-vN``)."""
    image: str | None = None
    """Docker image tag to run the task in (built from ``dockerfile_dir`` when set)."""
    dockerfile_dir: str | None = None
    workdir: str = "/app"
    limits: TaskLimits = field(default_factory=TaskLimits)
    env_vars: Mapping[str, str] = field(default_factory=dict)
    """Environment variables of the task's sandbox (every command run in it sees them)."""
    network: str = "host"
    """What the task's sandbox may reach: ``host`` (the host's network) or ``none``."""
    tests_dir: str | None = None
    """Hidden test assets on the host, copied in only for evaluation."""
    solution_dir: str | None = None
    """Oracle solution on the host (never shown to the agent)."""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    """Free-form facts of the task's family (the env that made the task reads its own keys)."""


@dataclass(frozen=True)
class Timings:
    """Wall-clock timestamps (``time.time()``) and derived durations of a call."""

    start: float = 0.0
    first_token: float = 0.0
    end: float = 0.0
    queue_s: float = 0.0
    """Seconds spent waiting for the engine before generation started."""


@dataclass(frozen=True)
class Call:
    """One LLM request/response seen by the proxy, with the exact tokens the engine saw."""

    call_id: str
    session_id: str
    index: int
    """Position of this call in its session, in arrival order."""
    agent_id: str
    parent_call_id: str | None
    """The earlier call whose prompt + completion is a token prefix of this prompt."""
    break_reason: BreakReason | None
    """``None`` when this call extends its parent; otherwise why it starts a new segment."""
    request: JSON
    """The request as received (messages, tools, sampling parameters), minus nothing."""
    prompt_ids: tuple[int, ...]
    completion_ids: tuple[int, ...]
    completion_logprobs: tuple[float, ...]
    obs_spans: tuple[tuple[int, int], ...] = ()
    """Half-open token ranges of ``prompt_ids`` holding environment output (tool results, user
    turns after the first; narrowed by the harness's observation targets) rendered for this call."""
    obs_body_spans: tuple[tuple[int, int], ...] | None = None
    """Half-open token ranges of whole observation bodies (harness framing and warnings included);
    ``None`` means the same as ``obs_spans`` (journals written before the field existed)."""
    new_from: int = 0
    """Index in ``prompt_ids`` where tokens rendered for this call begin (the spliced prefix
    from the parent ends here)."""
    response: JSON = field(default_factory=dict)
    """The assistant message returned to the client (content, tool_calls)."""
    finish_reason: str = "stop"
    policy_version: int = 0
    timings: Timings = field(default_factory=Timings)
    delivered: bool = True
    """False when the client went away before the response was flushed."""
    dialect: str = "openai"
    valid_action: bool = True
    """False when the completion could not be parsed into the response format the client
    asked for (for example a malformed tool call)."""
    sampling: JSON = field(default_factory=dict)
    """The sampling parameters the engine actually used (``temperature``, ``top_p``,
    ``max_tokens``, ``seed``, ``stop``). A training run pins temperature and top-p, so these may
    differ from what the harness asked for; ``request`` keeps what it asked for."""
    replayed_from: str | None = None
    """For a branch's replayed call: the id of the recorded call whose completion (ids, logprobs,
    policy version, reply) was served again instead of sampling. ``None``: the engine sampled it."""
    divergence: Divergence | None = None
    """Set on the call at which a branch's harness stopped matching the recorded calls (this call
    and every later one were sampled)."""

    def to_json(self) -> JSON:
        # Built by hand: dataclasses.asdict deep-copies every token id, which dominated the
        # proxy's per-call cost (benchmarks/proxy.py).
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["break_reason"] = self.break_reason.value if self.break_reason else None
        d["divergence"] = self.divergence.value if self.divergence else None
        d["timings"] = dataclasses.asdict(self.timings)
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Call:
        d = dict(d)
        d["break_reason"] = BreakReason(d["break_reason"]) if d.get("break_reason") else None
        d["divergence"] = Divergence(d["divergence"]) if d.get("divergence") else None
        d["prompt_ids"] = tuple(d["prompt_ids"])
        d["completion_ids"] = tuple(d["completion_ids"])
        d["completion_logprobs"] = tuple(d["completion_logprobs"])
        d["obs_spans"] = tuple(tuple(s) for s in d.get("obs_spans", ()))
        if d.get("obs_body_spans") is not None:
            d["obs_body_spans"] = tuple(tuple(s) for s in d["obs_body_spans"])
        d["timings"] = Timings(**d.get("timings", {}))
        return cls(**d)


@dataclass(frozen=True)
class Segment:
    """One token sequence for training. All per-token tuples have the same length."""

    input_ids: tuple[int, ...]
    action_mask: tuple[int, ...]
    """1 where the policy sampled the token (trained), else 0."""
    obs_mask: tuple[int, ...]
    """1 where the token is environment output (tool results, command output): ECHO's targets."""
    logprobs: tuple[float, ...]
    """The engine's logprob for action tokens, and for a branch's replayed completions the logprob
    recorded when they were first sampled; 0.0 elsewhere."""
    turn_index: tuple[int, ...]
    """Step index (within the trajectory) the token belongs to; -1 for the initial prompt."""
    policy_version: tuple[int, ...]
    break_reason: BreakReason = BreakReason.START
    """Why this segment starts (``START`` for the first)."""
    call_ids: tuple[str, ...] = ()
    agent_id: str = "main"
    obs_body_mask: tuple[int, ...] = ()
    """1 on whole observation bodies, harness framing and warnings included (ECHO's ``|O|``);
    empty means the same as ``obs_mask``."""

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def num_action_tokens(self) -> int:
        return sum(self.action_mask)


@dataclass(frozen=True)
class Step:
    """One turn of the agent: what it saw, what it did, and where its tokens are."""

    index: int
    call_id: str
    segment_index: int
    action_span: tuple[int, int]
    """Half-open token range of the sampled completion in ``segments[segment_index]``."""
    observation: str = ""
    """Environment content new since the previous call (the anchor's source)."""
    action: str = ""
    anchor: str = ""
    """Anchor-state key: the normalised current observation, no history (GiGPO)."""
    reward: float = 0.0
    valid: bool = True
    agent_id: str = "main"
    obs_span: tuple[int, int] = (0, 0)
    """Half-open token range of the tokens rendered for this call before its completion."""


@dataclass(frozen=True)
class ErrorInfo:
    """A typed failure recorded on a trajectory."""

    type: str
    """Class name of the error (``HarnessError``, ``RuntimeError_``...)."""
    boundary: str
    """Which boundary failed: engine, runtime, harness, env, reconstruction, proxy."""
    message: str


@dataclass(frozen=True)
class Trajectory:
    """One attempt at one task."""

    id: str
    task_id: str
    session_id: str
    segments: tuple[Segment, ...]
    steps: tuple[Step, ...]
    reward: float
    stop_reason: StopReason
    harness: str = ""
    env: str = ""
    agent_id: str = "main"
    sample_index: int = 0
    error: ErrorInfo | None = None
    sampled_tokens: int = 0
    """Tokens the engine sampled for this trajectory's calls (delivered or not)."""
    started_at: float = 0.0
    ended_at: float = 0.0
    metadata: Mapping[str, Any] = field(default_factory=dict)
    parent_trajectory_id: str | None = None
    """For a sub-agent's trajectory: the id of the main trajectory of its episode."""

    @property
    def trained_tokens(self) -> int:
        return sum(s.num_action_tokens for s in self.segments)

    @property
    def delivered_fraction(self) -> float:
        """Trained sampled tokens / sampled tokens (1.0 when nothing was sampled)."""
        return self.trained_tokens / self.sampled_tokens if self.sampled_tokens else 1.0

    @property
    def num_steps(self) -> int:
        return len(self.steps)


@dataclass(frozen=True)
class TrajectoryGroup:
    """The attempts at one task: the unit of group-relative advantages."""

    task_id: str
    trajectories: tuple[Trajectory, ...]
    parents: Mapping[str, tuple[str, int]] = field(default_factory=dict)
    """Tree structure when rollouts branched: trajectory id -> (parent trajectory id, turn)."""

    @property
    def rewards(self) -> list[float]:
        return [t.reward for t in self.trajectories]


BRANCH_KEY = "branch"
"""``Trajectory.metadata`` key of a branch's origin (:mod:`agentgym.rollout.branch`): its parent
trajectory's id and how many leading turns it shares with it (``shared_turns``)."""


def group_by_task(trajectories: Sequence[Trajectory]) -> list[TrajectoryGroup]:
    """Group trajectories by task id, keeping first-seen order. Branches (``metadata["branch"]``
    with ``shared_turns > 0``) become the group's ``parents``: ``id -> (parent id, shared turns)``."""
    groups: dict[str, list[Trajectory]] = {}
    for t in trajectories:
        groups.setdefault(t.task_id, []).append(t)
    out = []
    for k, v in groups.items():
        parents = {}
        for t in v:
            b = t.metadata.get(BRANCH_KEY) if isinstance(t.metadata, Mapping) else None
            if isinstance(b, Mapping) and b.get("parent") and int(b.get("shared_turns") or 0) > 0:
                parents[t.id] = (str(b["parent"]), int(b["shared_turns"]))
        out.append(TrajectoryGroup(task_id=k, trajectories=tuple(v), parents=parents))
    return out
