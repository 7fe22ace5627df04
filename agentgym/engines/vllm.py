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
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from typing import Any

from agentgym.engines.base import Engine, Generation
from agentgym.errors import EngineError
from agentgym.types import SamplingParams

TOKEN_ID_PREFIX = "token_id:"


def parse_token_id(token: str) -> int:
    """``"token_id:123"`` -> ``123`` (what vLLM sends with ``return_tokens_as_token_ids``)."""
    if not token.startswith(TOKEN_ID_PREFIX):
        raise EngineError(f"vLLM returned token {token!r} instead of 'token_id:N': is the server older than "
                          "vLLM 0.5 (no return_tokens_as_token_ids)?")
    try:
        return int(token[len(TOKEN_ID_PREFIX):])
    except ValueError:
        raise EngineError(f"vLLM returned malformed token {token!r}") from None


class VLLMEngine(Engine):
    """Serves generations from a vLLM server.

    Args:
        base_url: server root, e.g. ``http://127.0.0.1:8000`` (a trailing ``/v1`` is accepted).
        model: the served model name (what ``vllm serve`` was given, or ``--served-model-name``).
        tokenizer_path: checkpoint directory or hub id of the tokenizer (default: ``model``);
            it must be the server's tokenizer, since the proxy renders prompts with it.
        api_key: sent as a bearer token when the server was started with ``--api-key``.
        timeout_s: per-request timeout.
        max_model_len: prompt + completion limit; default: asked from ``/v1/models`` on first
            use. Longer prompts raise :class:`EngineError`, completions are cut to fit.
        client: an ``httpx.AsyncClient`` to use instead of a new one (tests, custom transports).
    """

    name = "vllm"

    def __init__(self, base_url: str, model: str, tokenizer_path: str | os.PathLike[str] | None = None, *,
                 api_key: str | None = None, timeout_s: float = 600.0, max_model_len: int | None = None,
                 client: Any = None) -> None:
        import httpx

        root = base_url.rstrip("/")
        self.base_url = root[: -len("/v1")] if root.endswith("/v1") else root
        self.model = model
        self.tokenizer_path = os.fspath(tokenizer_path) if tokenizer_path is not None else model
        self.max_model_len = max_model_len
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = client or httpx.AsyncClient(base_url=self.base_url, timeout=timeout_s, headers=headers)
        self._owns_client = client is None
        self._tokenizer: Any = None
        self._len_lock = asyncio.Lock()

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

    def request_body(self, prompt_ids: Sequence[int], sampling: SamplingParams, max_tokens: int) -> dict[str, Any]:
        """The exact JSON body sent to ``/v1/completions`` (pinned by the contract test)."""
        body: dict[str, Any] = {
            "model": self.model,
            "prompt": [int(i) for i in prompt_ids],
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
            "stream": False,
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

    async def generate(self, prompt_ids: Sequence[int], sampling: SamplingParams) -> Generation:
        if not prompt_ids:
            raise EngineError("empty prompt: the engine needs at least one token")
        limit = await self._max_model_len()
        max_tokens = sampling.max_tokens
        if limit is not None:
            if len(prompt_ids) >= limit:
                raise EngineError(f"prompt has {len(prompt_ids)} tokens but the vLLM server's max_model_len is "
                                  f"{limit}: shorten the conversation or restart vLLM with a larger --max-model-len")
            max_tokens = min(max_tokens, limit - len(prompt_ids))
        data = await self._post("/v1/completions", self.request_body(prompt_ids, sampling, max_tokens))
        return self.parse_response(data)

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
            resp = await self._client.request(method, path, json=body)
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
