"""The proxy: serves harnesses from the policy engine and records every token.

- :mod:`.server` — :class:`Proxy`, the HTTP server (routes, sessions);
- :mod:`.pipeline` — the dialect-free path of one call (plan, generate, record);
- :mod:`.openai` — the OpenAI Chat Completions dialect;
- :mod:`.splice` — the prefix index that reuses the parent call's exact token ids;
- :mod:`.calllog` — the append-only call journal.
"""

from agentgym.proxy.calllog import CallLog
from agentgym.proxy.server import Proxy

__all__ = ["CallLog", "Proxy"]
