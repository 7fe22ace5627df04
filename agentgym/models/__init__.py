"""Models: the tiny local chat model for tests and demos, and loading of real checkpoints.

>>> from agentgym.models import CHAT_TEMPLATE, build_tiny_model, load_model_and_tokenizer

Importing this package is cheap; torch and transformers load on first use.
"""

from __future__ import annotations

from agentgym.models.chat_template import CHAT_TEMPLATE, DEFAULT_SYSTEM_PROMPT
from agentgym.models.tiny import (
    ENDOFTEXT,
    IM_END,
    IM_START,
    build_tiny_model,
    load_model_and_tokenizer,
    main_build_tiny,
    tiny_model_path,
    train_tokenizer,
)

__all__ = [
    "CHAT_TEMPLATE",
    "DEFAULT_SYSTEM_PROMPT",
    "ENDOFTEXT",
    "IM_END",
    "IM_START",
    "build_tiny_model",
    "load_model_and_tokenizer",
    "main_build_tiny",
    "tiny_model_path",
    "train_tokenizer",
]
