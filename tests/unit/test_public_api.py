"""The public API: each package's ``__all__`` is pinned, every name in it imports, and every
exported class and function says what it is (a docstring)."""

from __future__ import annotations

import importlib
import inspect

import pytest

PUBLIC = {
    "agentgym": [
        "AgentGymError", "BreakReason", "Call", "ConfigError", "Divergence", "EngineError", "EnvError", "ErrorInfo",
        "HarnessError", "ProxyError", "ReconstructionError", "RegistryError", "RuntimeError_", "SamplingParams",
        "Segment", "Step", "StopReason", "Task", "TaskLimits", "Trajectory", "TrajectoryGroup", "__version__",
        "env_from", "make", "train"],
    "agentgym.env": ["Env", "Evaluation", "Stage"],
    "agentgym.stages": ["Stage", "run_stages"],
    "agentgym.check": ["EnvCheck", "TaskCheck", "check_env", "check_task", "format_failure", "format_line",
                       "format_summary", "select_tasks"],
    "agentgym.prebuild": ["BuiltImage", "prebuild"],
    "agentgym.harness": ["CHECK_REPLIES", "Harness", "HarnessContext", "ImageLayer", "Launch", "load_harness",
                         "tool_call_text"],
    "agentgym.harness_spec": ["DIALECTS", "PLACEHOLDERS", "CommandHarness", "HarnessSpec"],
    "agentgym.harness_check": ["CHECK_TASK", "HarnessCheck", "check_harness", "format_check"],
    "agentgym.observation": ["OBSERVATION_ROLES", "VOLATILE_PATTERNS", "AnchorFn", "TargetsFn", "anchor", "is_observation",
                             "new_observation", "normalize_observation", "observation_text"],
    "agentgym.registries": ["Registry", "Spec", "engines", "envs", "estimators", "harnesses", "load_entry_point",
                            "losses"],
    "agentgym.gym": ["CTRL_C", "SHELLS", "SUBMIT", "EpisodeEnv", "GymEnv", "make"],
    "agentgym.runtime.shell": ["CTRL_C", "ShellResult", "ShellSession"],
    "agentgym.paths": ["cache_dir"],
    "agentgym.engines": ["Engine", "Generation", "TokenChunk", "engine_spec", "load_engine"],
    "agentgym.engines.routed": ["SERVING_AGENT", "AgentRoutedEngine", "serving_agent"],
    "agentgym.agents": ["MAIN_AGENT", "agent_role", "is_main"],
    "agentgym.models": ["CHAT_TEMPLATE", "DEFAULT_SYSTEM_PROMPT", "ENDOFTEXT", "IM_END", "IM_START",
                        "build_tiny_model", "load_model_and_tokenizer", "main_build_tiny", "tiny_model_path",
                        "train_tokenizer"],
    "agentgym.proxy": ["CallLog", "Proxy"],
    "agentgym.proxy.replay": ["Replay"],
    "agentgym.rollout": ["Branch", "EpisodeSpec", "Overprovision", "PhaseTimeouts", "ResourceLimits", "RolloutConfig",
                         "RolloutResult", "run_episode", "run_rollouts"],
    "agentgym.rollout.branch": ["BRANCH_KEY", "Branch", "branch_from", "branch_summary"],
    "agentgym.rollout.schedule": ["GroupTracker", "Overprovision", "PhaseTimeout", "PhaseTimeouts", "ResourceLimits",
                                  "within"],
    "agentgym.runtime.pool": ["PoolStats", "WarmPool", "spec_key"],
    "agentgym.rollout.service": ["BATCH_OPTIONS", "RolloutService"],
    "agentgym.rollout.client": ["BatchEnded", "RolloutClient", "RolloutServiceError"],
    "agentgym.rollout.lock": ["LOCK_FILE", "RunDirLocked", "RunLock"],
    "agentgym.rollout.resume": ["INTERRUPTED_FILE", "SESSIONS_FILE", "HalfEpisode", "ResumeState",
                                "read_resume_state"],
    "agentgym.rollout.metrics": ["RunMetrics", "RunSummary", "format_summary"],
    "agentgym.filters": ["LINEAGES", "TrajectoryFilter", "apply_filter"],
    "agentgym.formats": ["FORMATS", "ExportReport", "conversation", "data_file", "export_dataset", "load_calls",
                         "read_source"],
    "agentgym.card": ["dataset_card", "manifest"],
    "agentgym.console": ["configure_output"],
    "agentgym.viewer": ["render_html", "unpack", "write_view"],
    "agentgym.runtime": ["DockerBackend", "DockerRuntime", "ExecResult", "HostCommand", "ImageBuildError", "LocalBackend",
                         "LocalRuntime", "ProxyEndpoint", "Runtime", "RuntimeBackend", "RuntimeFileNotFound", "RuntimeSpec",
                         "WarmPool", "get_backend"],
    "agentgym.tokens": ["ChatRenderer", "ParsedCompletion", "RenderedPrompt", "parse_hermes"],
    "agentgym.envs": ["BASIC_TASKS", "GUI_TASKS", "SWE_INSTANCES", "TERMINAL_TASKS"],
    "agentgym.envs.gui": ["TASKS", "ActionClient", "GuiEnv", "GuiGymEnv", "Observation"],
    "agentgym.envs.gui.gym": ["BUTTONS", "KINDS", "TEXT_CHARSET", "GuiGymEnv", "action_space", "observation_space",
                              "to_request"],
    "agentgym.envs.harbor": ["HarborEnv", "load_harbor_task", "load_task", "load_tb1_task", "parse_reward",
                             "read_reward", "read_rewards"],
    "agentgym.sources": ["SOURCES", "TaskSource", "env_from", "register_source", "source_for"],
    "agentgym.envs.swe": ["BUILTIN_INSTANCES", "SWEEnv", "SWEInstance", "load_instances"],
    "agentgym.harnesses": [],
}


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_all_is_pinned(module: str) -> None:
    mod = importlib.import_module(module)
    assert sorted(mod.__all__) == sorted(PUBLIC[module]), "update PUBLIC (and the docs) with the change"


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_star_import_gives_exactly_all(module: str) -> None:
    namespace: dict[str, object] = {}
    exec(f"from {module} import *", namespace)  # the way users import
    assert sorted(k for k in namespace if k != "__builtins__") == sorted(PUBLIC[module])


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_exported_classes_and_functions_are_documented(module: str) -> None:
    mod = importlib.import_module(module)
    undocumented = [name for name in mod.__all__
                    if (inspect.isclass(obj := getattr(mod, name)) or inspect.isfunction(obj))
                    and not inspect.getdoc(obj)]
    assert undocumented == []
