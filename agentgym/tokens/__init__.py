"""Token-level chat rendering and parsing.

- :mod:`.render` — :class:`ChatRenderer`: the model's chat template, rendering only new messages;
- :mod:`.messages` — canonical message keys for prefix matching;
- :mod:`.toolcalls` — tool calls parsed from sampled text (:func:`parse_hermes`).
"""

from agentgym.tokens.render import ChatRenderer, RenderedPrompt
from agentgym.tokens.toolcalls import ParsedCompletion, parse_hermes

__all__ = ["ChatRenderer", "ParsedCompletion", "RenderedPrompt", "parse_hermes"]
