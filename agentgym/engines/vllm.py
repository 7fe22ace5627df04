"""Adapter to a running vLLM OpenAI-compatible server, token ids in and token ids out.

The proxy renders and splices; this adapter only moves ids. Each call is one
``POST /v1/completions`` whose ``prompt`` is the list of prompt token ids, with
``return_tokens_as_token_ids`` (sampled tokens come back as ``"token_id:123"`` strings, so
tokens that are not valid UTF-8 on their own survive JSON) and ``return_token_ids`` (newer vLLM
also returns ``choices[0].token_ids``; both are cross-checked when present).

Launch the server so its logprobs mean what :class:`~agentgym.engines.base.Generation`
promises (``log_softmax(logits / T)`` of the sampled token)::

    vllm serve /path/to/checkpoint --logprobs-mode processed_logprobs --generation-config vllm

``--logprobs-mode processed_logprobs``: vLLM's default (``raw_logprobs``) ignores the temperature.
With ``top_p < 1`` vLLM's processed logprobs are renormalised over the nucleus, which the
embedded engine's are not; keep ``top_p = 1`` for training, as the trainer assumes.
``--generation-config vllm``: otherwise the checkpoint's ``generation_config.json`` (top_k,
repetition_penalty, ...) silently changes the sampling distribution. The adapter also sends
neutral values for those knobs explicitly.

:meth:`VLLMEngine.stream` sends the same body with ``"stream": true`` and reads vLLM's SSE
chunks (``data: {"choices": [{"logprobs": {"tokens": ["token_id:7"], ...}, "token_ids": [7],
"finish_reason": null}]}`` ... ``data: [DONE]``) as they come; closing it early closes the
connection, which aborts the request in vLLM.

The wire format, against a stand-in server (``httpx.MockTransport``)::

>>> import asyncio, httpx, json
>>> from agentgym.types import SamplingParams
>>> def server(request: httpx.Request) -> httpx.Response:
...     body = json.loads(request.content)
...     assert body["prompt"] == [1, 2, 3] and body["return_tokens_as_token_ids"]
...     return httpx.Response(200, json={"choices": [{"finish_reason": "stop", "token_ids": [7, 8],
...         "logprobs": {"tokens": ["token_id:7", "token_id:8"], "token_logprobs": [-0.1, -0.2]}}]})
>>> client = httpx.AsyncClient(base_url="http://vllm", transport=httpx.MockTransport(server))
>>> engine = VLLMEngine("http://vllm", model="/models/qwen", max_model_len=4096, client=client)
>>> gen = asyncio.run(engine.generate([1, 2, 3], SamplingParams(temperature=1.0)))
>>> gen.completion_ids, gen.logprobs, gen.finish_reason
((7, 8), (-0.1, -0.2), 'stop')

Weight sync (:meth:`VLLMEngine.update_weights`) pushes the trainer's weights into the running
server over HTTP. It needs the server's development routes, so start it with
``VLLM_SERVER_DEV_MODE=1``, and a ``weights_dir`` the server can read. Each update writes a
checkpoint to ``<weights_dir>/v<version>`` (built beside it under a hidden name, then renamed,
so the server never sees half a checkpoint), waits for this engine's in-flight generations, and
then, for ``reload_protocol="v0.16"`` (vLLM >= 0.16)::

    POST /pause?mode=wait&clear_cache=true
    POST /collective_rpc    {"method": "reload_weights", "kwargs": {"weights_path": DIR,
                             "is_checkpoint_format": true}, "timeout": update_timeout_s}
    POST /reset_prefix_cache?reset_running_requests=true
    POST /resume            (always, even when a step before it failed)

``reload_protocol="v0.12"`` (vLLM 0.12 to 0.15) pauses with
``?wait_for_inflight_requests=true&clear_cache=true`` and reloads in two calls:
``update_config`` (``{"overrides": {"model_config": {"model": DIR}}}``), then ``reload_weights``
with no arguments. ``generate()`` calls made meanwhile wait for the update to finish. See
``docs/vllm.md``.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import logging
import os
import re
import shutil
import tempfile
import time
import uuid
from array import array
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from agentgym.engines.base import Engine, Generation, TokenChunk
from agentgym.errors import EngineError
from agentgym.types import SamplingParams

log = logging.getLogger(__name__)

TOKEN_ID_PREFIX = "token_id:"

ReloadProtocol = Literal["v0.16", "v0.12"]
RELOAD_PROTOCOLS: tuple[str, ...] = ("v0.16", "v0.12")

WEIGHTS_FILE = "model.safetensors"
"""What the default saver writes the state dict to, in each ``<weights_dir>/v<version>``."""

CHECKPOINT_SIDE_FILES = ("config.json", "generation_config.json", "tokenizer*", "special_tokens_map.json",
                         "added_tokens.json", "vocab.*", "merges.txt", "chat_template*", "*.tiktoken",
                         "preprocessor_config.json", "processor_config.json")
"""Files the default saver copies from the served checkpoint (patterns; never weights or their
index: vLLM would load the index's file list instead of the new ``model.safetensors``)."""

_VERSION_DIR = re.compile(r"v\d+")
_SCRATCH_DIR = re.compile(r"\.v\d+\..+\.(partial|old)")

DEV_MODE_HINT = ("start the server with VLLM_SERVER_DEV_MODE=1 (vLLM serves /pause, /collective_rpc, "
                 "/reset_prefix_cache and /resume only in dev mode)")


def parse_token_id(token: str) -> int:
    """``"token_id:123"`` -> ``123`` (what vLLM sends with ``return_tokens_as_token_ids``)."""
    if not token.startswith(TOKEN_ID_PREFIX):
        raise EngineError(f"vLLM returned token {token!r} instead of 'token_id:N': is the server older than "
                          "vLLM 0.5 (no return_tokens_as_token_ids)?")
    try:
        return int(token[len(TOKEN_ID_PREFIX):])
    except ValueError:
        raise EngineError(f"vLLM returned malformed token {token!r}") from None


def save_safetensors_checkpoint(state_dict: Mapping[str, Any], directory: Path, *,
                                source: str | os.PathLike[str]) -> None:
    """Write ``state_dict`` as a Hugging Face checkpoint vLLM can load: ``model.safetensors``
    plus the config, generation config and tokenizer files of the checkpoint at ``source``.

    Tensors are moved to the CPU and made contiguous; tensors that share storage (tied
    embeddings) are written as separate copies, which vLLM's loaders accept (a tied
    ``lm_head.weight`` is skipped). Names must be the checkpoint's names: pass the state dict of
    the Hugging Face model itself, not of a wrapper (DDP ``module.``, ``torch.compile``
    ``_orig_mod.``).
    """
    import torch
    from safetensors.torch import save_file

    src = Path(source)
    if not (src / "config.json").is_file():
        raise EngineError(f"cannot build a checkpoint for vLLM: {str(src)!r} is not a local checkpoint directory "
                          "with a config.json. Pass tokenizer_path= the directory the server serves, or "
                          "save_checkpoint= a function that writes the checkpoint itself")
    tensors: dict[str, Any] = {}
    storages: set[int] = set()
    for name, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise EngineError(f"state_dict[{name!r}] is a {type(value).__name__}, not a tensor")
        t = value.detach().to("cpu").contiguous()
        ptr = t.untyped_storage().data_ptr()
        if ptr in storages and t.numel():
            t = t.clone()
        storages.add(ptr)
        tensors[name] = t
    save_file(tensors, str(directory / WEIGHTS_FILE), metadata={"format": "pt"})
    for f in sorted(src.iterdir()):
        if f.is_file() and any(fnmatch.fnmatch(f.name, pat) for pat in CHECKPOINT_SIDE_FILES):
            shutil.copy2(f, directory / f.name)


class _UpdateGate:
    """Keeps ``/v1/completions`` requests and weight updates apart (one event loop, no locks).

    Generations enter and leave; an update closes the gate (new generations wait), waits for
    the ones inside to leave, and opens it when done.
    """

    def __init__(self) -> None:
        self.inflight = 0
        self.closed = False
        self._open = asyncio.Event()
        self._open.set()
        self._drained = asyncio.Event()
        self._drained.set()

    async def enter(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.closed:
            left = deadline - time.monotonic()
            try:
                await asyncio.wait_for(self._open.wait(), max(left, 0.0))
            except asyncio.TimeoutError:
                raise EngineError(f"generate() waited {timeout:g} s for a weight update to finish; "
                                  "the update is stuck (see its error)") from None
        self.inflight += 1
        self._drained.clear()

    def leave(self) -> None:
        self.inflight -= 1
        if self.inflight == 0:
            self._drained.set()

    async def close(self, timeout: float) -> None:
        self.closed = True
        self._open.clear()
        try:
            await asyncio.wait_for(self._drained.wait(), timeout)
        except BaseException as e:
            self.open()
            if isinstance(e, asyncio.TimeoutError):
                raise EngineError(f"{self.inflight} generate() calls were still running after {timeout:g} s "
                                  "(timeout_s); the update was not started") from None
            raise

    def open(self) -> None:
        self.closed = False
        self._open.set()


class VLLMEngine(Engine):
    """Serves generations from a vLLM server, and pushes new weights into it.

    Args:
        base_url: server root, e.g. ``http://127.0.0.1:8000`` (a trailing ``/v1`` is accepted).
        model: the served model name (what ``vllm serve`` was given, or ``--served-model-name``).
        tokenizer_path: checkpoint directory or hub id of the tokenizer (default: ``model``);
            it must be the server's tokenizer, since the proxy renders prompts with it. The
            default checkpoint saver copies config and tokenizer files from it.
        api_key: sent as a bearer token when the server was started with ``--api-key`` (also on
            the weight-sync routes, which vLLM does not guard with it).
        timeout_s: per-request timeout of ``/v1/completions``; also how long an update waits
            for this engine's in-flight generations before it gives up.
        max_model_len: prompt + completion limit; default: asked from ``/v1/models`` on first
            use. Longer prompts raise :class:`EngineError`, completions are cut to fit.
        client: an ``httpx.AsyncClient`` to use instead of a new one (tests, custom transports).
        weights_dir: where :meth:`update_weights` writes checkpoints (``v<version>``
            subdirectories); a path the server can read, one directory per engine. Without it
            :meth:`update_weights` raises.
        save_checkpoint: ``save_checkpoint(state_dict, directory)`` writes a checkpoint vLLM can
            load into the empty ``directory`` (weights, ``config.json``, tokenizer files).
            Default: :func:`save_safetensors_checkpoint` with ``source=tokenizer_path``.
        reload_protocol: ``"v0.16"`` for vLLM >= 0.16 (default), ``"v0.12"`` for 0.12 to 0.15.
        update_timeout_s: limit of the reload step (sent to the server as the RPC timeout too).
        control_timeout_s: limit of each other step (pause, update_config, cache reset, resume).
        keep_weights: how many pushed versions to keep in ``weights_dir``; older ``v<N>``
            directories are deleted after each successful update.
    """

    name = "vllm"

    def __init__(self, base_url: str, model: str, tokenizer_path: str | os.PathLike[str] | None = None, *,
                 api_key: str | None = None, timeout_s: float = 600.0, max_model_len: int | None = None,
                 client: Any = None, weights_dir: str | os.PathLike[str] | None = None,
                 save_checkpoint: Callable[[dict[str, Any], Path], None] | None = None,
                 reload_protocol: ReloadProtocol = "v0.16", update_timeout_s: float = 900.0,
                 control_timeout_s: float = 60.0, keep_weights: int = 2) -> None:
        import httpx

        if reload_protocol not in RELOAD_PROTOCOLS:
            raise EngineError(f"reload_protocol={reload_protocol!r}: use 'v0.16' (vLLM >= 0.16) or 'v0.12' "
                              "(vLLM 0.12 to 0.15)")
        if keep_weights < 1:
            raise EngineError(f"keep_weights={keep_weights}: keep at least the version being served")
        for label, value in (("timeout_s", timeout_s), ("update_timeout_s", update_timeout_s),
                             ("control_timeout_s", control_timeout_s)):
            if not value > 0:
                raise EngineError(f"{label}={value}: must be a positive number of seconds")
        root = base_url.rstrip("/")
        self.base_url = root[: -len("/v1")] if root.endswith("/v1") else root
        self.model = model
        self.tokenizer_path = os.fspath(tokenizer_path) if tokenizer_path is not None else model
        self.max_model_len = max_model_len
        self.timeout_s = timeout_s
        self.weights_dir = Path(weights_dir) if weights_dir is not None else None
        self.save_checkpoint = save_checkpoint
        self.reload_protocol: ReloadProtocol = reload_protocol
        self.update_timeout_s = update_timeout_s
        self.control_timeout_s = control_timeout_s
        self.keep_weights = keep_weights
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = client or httpx.AsyncClient(base_url=self.base_url, timeout=timeout_s, headers=self._headers)
        self._owns_client = client is None
        self._tokenizer: Any = None
        self._len_lock = asyncio.Lock()
        self._gate = _UpdateGate()
        self._updating: int | None = None
        self._pushed: list[Path] = []

    @property
    def update_window_s(self) -> float:
        """The longest an update can keep ``generate()`` waiting: the drain of in-flight
        generations, the reload, and at most four other steps. ``generate()`` gives up after it."""
        return self.timeout_s + self.update_timeout_s + 4 * self.control_timeout_s

    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            try:
                self._tokenizer = AutoTokenizer.from_pretrained(self.tokenizer_path)
            except OSError as e:
                raise EngineError(f"cannot load the tokenizer {self.tokenizer_path!r} for the vLLM engine: {e}. "
                                  "Pass tokenizer_path= the checkpoint directory the server serves") from e
        return self._tokenizer

    @property
    def model_name(self) -> str:
        return self.model

    async def context_length(self) -> int | None:
        return await self._max_model_len()

    def request_body(self, prompt_ids: Sequence[int], sampling: SamplingParams, max_tokens: int,
                     stream: bool = False) -> dict[str, Any]:
        """The exact JSON body sent to ``/v1/completions`` (pinned by the contract test)."""
        body: dict[str, Any] = {
            "model": self.model,
            "prompt": prompt_ids.tolist() if isinstance(prompt_ids, array) else [int(i) for i in prompt_ids],
            "max_tokens": max_tokens,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            # Neutral values, so server-side defaults from generation_config.json cannot
            # change the distribution the logprobs describe.
            "top_k": -1,
            "min_p": 0.0,
            "repetition_penalty": 1.0,
            "presence_penalty": 0.0,
            "frequency_penalty": 0.0,
            "n": 1,
            "stream": stream,
            "logprobs": 1,
            "return_tokens_as_token_ids": True,
            "return_token_ids": True,
            "skip_special_tokens": False,
        }
        if sampling.stop:
            body["stop"] = list(sampling.stop)
        if sampling.seed is not None:
            body["seed"] = sampling.seed
        return body

    async def _budget(self, prompt_ids: Sequence[int], sampling: SamplingParams) -> int:
        if not prompt_ids:
            raise EngineError("empty prompt: the engine needs at least one token")
        limit = await self._max_model_len()
        max_tokens = sampling.max_tokens
        if limit is not None:
            if len(prompt_ids) >= limit:
                raise EngineError(f"prompt has {len(prompt_ids)} tokens but the vLLM server's max_model_len is "
                                  f"{limit}: shorten the conversation or restart vLLM with a larger --max-model-len")
            max_tokens = min(max_tokens, limit - len(prompt_ids))
        return max_tokens

    async def stream(self, prompt_ids: Sequence[int], sampling: SamplingParams) -> AsyncIterator[TokenChunk]:
        """Stream tokens from ``/v1/completions`` with ``"stream": true``: the same ids and
        logprobs as :meth:`generate`, chunk by chunk."""
        import httpx

        body = self.request_body(prompt_ids, sampling, await self._budget(prompt_ids, sampling), stream=True)
        finish: str | None = None
        await self._gate.enter(self.update_window_s)
        try:
            async with self._client.stream("POST", "/v1/completions", json=body, headers=self._headers) as resp:
                if resp.status_code != 200:
                    text = (await resp.aread()).decode(errors="replace")
                    raise EngineError(f"vLLM POST /v1/completions answered {resp.status_code}: {text[:500]}")
                async for line in resp.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[len("data:"):].strip()
                    if data == "[DONE]":
                        break
                    ids, logprobs, done = self.parse_stream_chunk(data)
                    finish = done or finish
                    if ids:
                        yield TokenChunk(ids=ids, logprobs=logprobs)
            if finish is None:
                raise EngineError("vLLM's stream ended without a finish_reason")
            yield TokenChunk(ids=(), logprobs=(), finish_reason=finish, policy_version=self.policy_version)
        except httpx.HTTPError as e:
            raise EngineError(f"vLLM server at {self.base_url} failed mid-stream ({type(e).__name__}: {e})") from e
        finally:
            self._gate.leave()

    def parse_stream_chunk(self, data: str) -> tuple[tuple[int, ...], tuple[float, ...], str | None]:
        """``(ids, logprobs, finish_reason)`` of one streamed ``/v1/completions`` chunk."""
        try:
            chunk = json.loads(data)
        except json.JSONDecodeError:
            raise EngineError(f"vLLM streamed a chunk that is not JSON: {data[:200]}") from None
        if not isinstance(chunk, dict):
            raise EngineError(f"unexpected vLLM stream chunk: {data[:200]}")
        if "error" in chunk or chunk.get("object") == "error":
            err = chunk.get("error", chunk)
            raise EngineError(f"vLLM failed mid-stream: {str(err.get('message', err) if isinstance(err, dict) else err)[:500]}")
        if not chunk.get("choices"):
            return (), (), None  # a usage-only chunk
        try:
            choice = chunk["choices"][0]
            lp = choice.get("logprobs") or {"tokens": [], "token_logprobs": []}
            ids = tuple(parse_token_id(t) for t in lp["tokens"])
            logprobs = tuple(float(x) for x in lp["token_logprobs"])
        except (KeyError, IndexError, TypeError) as e:
            raise EngineError(f"unexpected vLLM stream chunk (missing {e}): {data[:300]}") from None
        direct = choice.get("token_ids")
        if direct is not None and tuple(direct) != ids:
            raise EngineError(f"vLLM token_ids {list(direct)[:8]} disagree with its logprob tokens {list(ids)[:8]}")
        if len(logprobs) != len(ids):
            raise EngineError(f"vLLM streamed {len(ids)} tokens but {len(logprobs)} logprobs")
        finish = choice.get("finish_reason")
        if finish not in (None, "stop", "length"):
            raise EngineError(f"vLLM finished with {finish!r} (aborted or rejected request)")
        return ids, logprobs, finish

    async def generate(self, prompt_ids: Sequence[int], sampling: SamplingParams) -> Generation:
        max_tokens = await self._budget(prompt_ids, sampling)
        body = self.request_body(prompt_ids, sampling, max_tokens)
        # Never between an update's /pause and /resume; the version is read before leaving.
        await self._gate.enter(self.update_window_s)
        try:
            data = await self._post("/v1/completions", body)
            return self.parse_response(data)
        finally:
            self._gate.leave()

    def parse_response(self, data: Any) -> Generation:
        """Turn a ``/v1/completions`` response body into a :class:`Generation`."""
        try:
            choice = data["choices"][0]
            lp = choice["logprobs"]
            ids = [parse_token_id(t) for t in lp["tokens"]]
            logprobs = [float(x) for x in lp["token_logprobs"]]
            finish = choice["finish_reason"]
        except (KeyError, IndexError, TypeError) as e:
            raise EngineError(f"unexpected vLLM response (missing {e}): {str(data)[:300]}") from None
        direct = choice.get("token_ids")
        if direct is not None and list(direct) != ids:
            raise EngineError(f"vLLM token_ids {list(direct)[:8]}... disagree with its logprob tokens {ids[:8]}...")
        if len(logprobs) != len(ids):
            raise EngineError(f"vLLM returned {len(ids)} tokens but {len(logprobs)} logprobs")
        if finish not in ("stop", "length"):
            raise EngineError(f"vLLM finished with {finish!r} (aborted or rejected request)")
        return Generation(completion_ids=tuple(ids), logprobs=tuple(logprobs), finish_reason=finish,
                          policy_version=self.policy_version)

    # -- weight sync ----------------------------------------------------------------------------
    async def update_weights(self, state_dict: dict[str, Any], version: int) -> None:
        """Push ``state_dict`` into the running server; later generations report ``version``.

        Writes ``<weights_dir>/v<version>`` (atomically, while generation goes on), waits for
        this engine's in-flight generations (at most ``timeout_s``; new ones wait for the update),
        then pauses the server, reloads, resets the prefix cache and resumes it (see the module
        docstring for the exact requests). ``/resume`` is sent even when a step failed or timed
        out. On failure raises :class:`EngineError` naming the step, and ``policy_version`` keeps
        its old value. On success, versions beyond the last ``keep_weights`` are deleted.
        """
        if self.weights_dir is None:
            raise EngineError("update_weights needs VLLMEngine(weights_dir=...): a directory the vLLM server can "
                              "read, where each version's checkpoint is written")
        if self._updating is not None:
            raise EngineError(f"update_weights(version={version}) while the update to version {self._updating} "
                              "is still running: await one update before starting the next")
        self._updating = version
        try:
            final = await asyncio.to_thread(self._write_checkpoint, state_dict, version)
            await self._gate.close(self.timeout_s)
            try:
                await self._reload(final, version)
                self.policy_version = version
            finally:
                self._gate.open()
            self._prune(final)
        finally:
            self._updating = None

    def _write_checkpoint(self, state_dict: dict[str, Any], version: int) -> Path:
        """Build the checkpoint under a hidden scratch name, then rename it to ``v<version>``."""
        assert self.weights_dir is not None
        root = self.weights_dir
        root.mkdir(parents=True, exist_ok=True)
        final = root / f"v{int(version)}"
        scratch = Path(tempfile.mkdtemp(prefix=f".v{int(version)}.", suffix=".partial", dir=root))
        try:
            if self.save_checkpoint is not None:
                self.save_checkpoint(state_dict, scratch)
            else:
                save_safetensors_checkpoint(state_dict, scratch, source=self.tokenizer_path)
            names = {p.name for p in scratch.iterdir()}
            if "config.json" not in names or not any(n.endswith((".safetensors", ".bin", ".pt")) for n in names):
                raise EngineError(f"the checkpoint written for version {version} has {sorted(names)}; vLLM needs "
                                  "config.json and weight files (*.safetensors) in it")
            os.chmod(scratch, 0o755)  # mkdtemp makes it 0700; the server may run as another user
            if final.exists():  # the same version pushed again (a retry): swap it out
                old = root / f".v{int(version)}.{uuid.uuid4().hex[:8]}.old"
                os.rename(final, old)
                os.rename(scratch, final)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.rename(scratch, final)
        except BaseException as e:
            shutil.rmtree(scratch, ignore_errors=True)
            if isinstance(e, EngineError):
                raise
            if isinstance(e, Exception):
                raise EngineError(f"update_weights(version={version}): writing the checkpoint under {root} "
                                  f"failed: {type(e).__name__}: {e}") from e
            raise
        return final

    def _steps(self, weights: Path) -> list[tuple[str, str, dict[str, str] | None, dict[str, Any] | None, float]]:
        """``(step, path, query, JSON body, timeout)`` of each request before ``/resume``."""
        control, reload = self.control_timeout_s, self.update_timeout_s
        reset = ("reset_prefix_cache", "/reset_prefix_cache", {"reset_running_requests": "true"}, None, control)
        if self.reload_protocol == "v0.12":
            return [
                ("pause", "/pause", {"wait_for_inflight_requests": "true", "clear_cache": "true"}, None, control),
                ("update_config", "/collective_rpc", None,
                 {"method": "update_config", "kwargs": {"overrides": {"model_config": {"model": str(weights)}}},
                  "timeout": control}, control),
                ("reload_weights", "/collective_rpc", None, {"method": "reload_weights", "timeout": reload}, reload),
                reset,
            ]
        return [
            ("pause", "/pause", {"mode": "wait", "clear_cache": "true"}, None, control),
            ("reload_weights", "/collective_rpc", None,
             {"method": "reload_weights", "kwargs": {"weights_path": str(weights), "is_checkpoint_format": True},
              "timeout": reload}, reload),
            reset,
        ]

    async def _reload(self, weights: Path, version: int) -> None:
        failure: BaseException | None = None
        try:
            for step, path, query, body, timeout in self._steps(weights):
                await self._control(step, path, query, body, timeout, version, weights)
        except BaseException as e:  # cancelled too: the server must not stay paused
            failure = e
        try:
            await self._control("resume", "/resume", None, None, self.control_timeout_s, version, weights)
        except EngineError as e:
            if failure is None:
                raise EngineError(f"{e} The new weights are loaded but the server may still be paused: "
                                  f"POST {self.base_url}/resume, or restart it") from None
            if isinstance(failure, EngineError):
                raise EngineError(f"{failure} Then /resume failed too, so the server may be left paused "
                                  f"(POST {self.base_url}/resume, or restart it): {e}") from failure
        if isinstance(failure, EngineError):
            raise EngineError(f"{failure} (/resume answered 200: the server is serving again.)") from failure
        if failure is not None:
            raise failure

    async def _control(self, step: str, path: str, query: dict[str, str] | None, body: dict[str, Any] | None,
                       timeout: float, version: int, weights: Path) -> None:
        """One weight-sync request: 200 or an :class:`EngineError` that names the step."""
        import httpx

        where = f"vLLM weight update to version {version} failed at step '{step}' (POST {self.base_url}{path})"
        try:
            resp = await asyncio.wait_for(
                self._client.post(path, params=query, json=body, headers=self._headers, timeout=timeout), timeout)
        except (asyncio.TimeoutError, httpx.TimeoutException):
            raise EngineError(f"{where}: no answer within {timeout:g} s "
                              f"({'update_timeout_s' if step == 'reload_weights' else 'control_timeout_s'})."
                              + self._after(step, weights)) from None
        except httpx.HTTPError as e:
            raise EngineError(f"{where}: server not reachable ({type(e).__name__}: {e})."
                              + self._after(step, weights)) from e
        if resp.status_code == 200:
            return
        hint = ""
        if resp.status_code in (404, 405):
            hint = f" The route is missing: {DEV_MODE_HINT}."
        elif resp.status_code in (400, 422) and step == "pause":
            hint = (f" Does reload_protocol={self.reload_protocol!r} match the server's vLLM version "
                    "('v0.16' for >= 0.16, 'v0.12' for 0.12 to 0.15)?")
        raise EngineError(f"{where}: HTTP {resp.status_code}: {resp.text[:500]}.{hint}" + self._after(step, weights))

    @staticmethod
    def _after(step: str, weights: Path) -> str:
        if step in ("update_config", "reload_weights"):
            return (f" The server's weights are now in an unknown state: check its log, then push again or "
                    f"restart it. The checkpoint is at {weights}.")
        return ""

    def _prune(self, current: Path) -> None:
        """Keep the last ``keep_weights`` pushed versions; delete other ``v<N>`` and scratch dirs."""
        self._pushed = [p for p in self._pushed if p != current] + [current]
        keep = set(self._pushed[-self.keep_weights:])
        self._pushed = self._pushed[-self.keep_weights:]
        assert self.weights_dir is not None
        for p in self.weights_dir.iterdir():
            if p in keep or not p.is_dir() or not (_VERSION_DIR.fullmatch(p.name) or _SCRATCH_DIR.fullmatch(p.name)):
                continue
            try:
                shutil.rmtree(p)
            except OSError as e:
                log.warning("could not delete old weights %s: %s", p, e)

    # -- plain requests ---------------------------------------------------------------------------
    async def _max_model_len(self) -> int | None:
        if self.max_model_len is not None:
            return self.max_model_len
        async with self._len_lock:
            if self.max_model_len is None:
                data = await self._get("/v1/models")
                for card in data.get("data", []):
                    if card.get("id") == self.model and card.get("max_model_len"):
                        self.max_model_len = int(card["max_model_len"])
                        break
                else:
                    served = [c.get("id") for c in data.get("data", [])]
                    if self.model not in served:
                        raise EngineError(f"the vLLM server at {self.base_url} serves {served}, not {self.model!r}; "
                                          "pass model= one of those")
                    self.max_model_len = 0  # unknown: let the server enforce it
        return self.max_model_len or None

    async def _get(self, path: str) -> Any:
        return await self._send("GET", path, None)

    async def _post(self, path: str, body: dict[str, Any]) -> Any:
        return await self._send("POST", path, body)

    async def _send(self, method: str, path: str, body: dict[str, Any] | None) -> Any:
        import httpx

        try:
            resp = await self._client.request(method, path, json=body, headers=self._headers)
        except httpx.HTTPError as e:
            raise EngineError(f"vLLM server at {self.base_url} not reachable ({type(e).__name__}: {e}); "
                              "is `vllm serve` running there?") from e
        if resp.status_code != 200:
            raise EngineError(f"vLLM {method} {path} answered {resp.status_code}: {resp.text[:500]}")
        try:
            return resp.json()
        except ValueError:
            raise EngineError(f"vLLM {method} {path} answered non-JSON: {resp.text[:200]}") from None

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()
