"""The proxy: serves harnesses from the policy engine and records every token.

- :mod:`.server` — :class:`Proxy`, the HTTP server (routes, sessions, weight updates);
- :mod:`.pipeline` — the dialect-free path of one call (plan, generate or stream, record);
- :mod:`.dialect` — what a dialect provides; :mod:`.openai` (Chat Completions),
  :mod:`.responses` (OpenAI Responses), :mod:`.anthropic` (Anthropic Messages);
- :mod:`.splice` — lineages and the prefix index that reuses the parent call's exact token ids;
- :mod:`.limits` — ids, sizes and bodies, checked before any work;
- :mod:`.calllog` and :mod:`.writer` — the write-ahead call journal, one delta per call.

See ``docs/proxy.md``.
"""

from agentgym.proxy.calllog import CallLog
from agentgym.proxy.server import Proxy

__all__ = ["CallLog", "Proxy"]
