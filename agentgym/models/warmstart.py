"""Warm start for the tiny model: a few hundred SFT steps on synthetic agent transcripts.

A randomly initialised model emits noise, so a harness driven by it never gets past parsing its
first reply. This module teaches the *format* only: after ``<|im_start|>assistant\\n`` the model
learns to emit an optional short sentence, then ``<tool_call>\\n{"name": "bash", "arguments":
{"command": "..."}}\\n</tool_call><|im_end|>`` with a generic shell command (ls, cat, echo,
printf > file, mkdir, ...), and sometimes a plain final answer after some tool results.

What it is NOT trained on: any task's solution. Instructions, commands and tool outputs are drawn
independently from generic pools (:mod:`agentgym.models.corpus` and the lists below), so the
commands are not conditioned on what the user asked; whatever task skill the model shows comes
from RL, not from here.
"""

from __future__ import annotations

import json
import math
import random
import time
from typing import Any

from agentgym.models.corpus import ENGLISH, SHELL_COMMANDS, TOOL_OUTPUTS

CORPUS_VERSION = 2
"""Bumped whenever the synthetic transcripts change (it names the cached tiny model). Version 2
added generic file work (subdirectories, scripts, compound commands), longer transcripts and
fewer early final answers: the warm-started model then meets one workspace requirement in about
a quarter of the episodes, up from about a tenth (benchmarks/learning.py, README)."""

BASH_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "bash",
        "description": "Execute a bash command in the terminal and return its output.",
        "parameters": {
            "type": "object",
            "properties": {"command": {"type": "string", "description": "The bash command to run."}},
            "required": ["command"],
        },
    },
}

SYSTEM_PROMPTS = (
    "You are a helpful assistant that can interact with a computer to solve tasks.",
    "You are a helpful assistant that solves tasks in a Linux terminal.",
    "You are an autonomous software engineer. Use the bash tool to inspect and change files.",
    "You are a helpful assistant.",
)

INSTRUCTIONS = (
    "Create a file named {f} that contains the word {w}.",
    "List the files in {d} and report how many there are.",
    "Print the contents of {f}.",
    "Make a directory called {d} and put an empty file {f} in it.",
    "Write {w} into {f}, then show the file.",
    "Find every Python file in the project.",
    "Check which user you are running as and where you are.",
    "Count the lines of {f}.",
    "Fix the bug described in the README and run the tests.",
    "Append the line {w} to {f}.",
    "Please solve this task: {w}. When you are done, say so.",
)

FILES = ("hello.txt", "notes.txt", "out.txt", "data.csv", "main.py", "README.md", "result.txt",
         "log.txt", "config.txt", "answer.txt", "todo.md", "run.sh")
DIRS = ("/app", "/tmp", "src", "data", "build", "/app/output", "results", "tests")
WORDS = ("hello", "world", "done", "42", "alpha", "banana", "ok", "green", "agentgym", "test", "value")
SUBDIRS = ("src", "data", "build", "results", "tests", "docs", "out", "tmp")
SCRIPTS = ("main.py", "app.py", "run.py", "test_main.py", "util.py")

PREAMBLES = (
    "Let me look at the files first.",
    "I will check the current directory.",
    "Let me run a command.",
    "I'll create the file now.",
    "Let me verify the result.",
    "Now I will inspect the output.",
)

FINAL_ANSWERS = (
    "Done.",
    "The task is complete.",
    "I created the file with the requested content.",
    "All done: the command succeeded.",
    "The files are listed above.",
    "I have finished the task.",
)


def _command(rng: random.Random) -> str:
    """A generic shell command: from the corpus, or a template over random names."""
    f, d, w = rng.choice(FILES), rng.choice(DIRS), rng.choice(WORDS)
    sub = rng.choice(SUBDIRS)
    templates = (
        f"ls {d}", f"ls -la {d}", f"cat {f}", f"echo {w}", f"echo '{w}' > {f}", f"printf '{w}\\n' > {f}",
        f"touch {f}", f"mkdir -p {d}", f"wc -l {f}", f"head -n 5 {f}", f"cat {d}/{f}",
        f"echo {w} >> {f}", f"cd {d} && ls", f"grep -n {w} {f}", f"cp {f} {d}/", "pwd", "ls",
        # generic file work, as any shell-literate model would know it (not conditioned on a task)
        f"mkdir -p {sub} && echo {w} > {sub}/{f}", f"mkdir {sub}", f"touch {sub}/{f}", f"echo {w} > {sub}/{f}",
        f"printf '{w}\\n' > {f} && cat {f}", f"echo 'print(\"{w}\")' > {rng.choice(SCRIPTS)}", f"ls {sub}",
    )
    return rng.choice(SHELL_COMMANDS) if rng.random() < 0.3 else rng.choice(templates)


def synthetic_conversation(rng: random.Random) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One synthetic agent transcript: (messages, tools)."""
    fmt = {"f": rng.choice(FILES), "d": rng.choice(DIRS), "w": rng.choice(WORDS)}
    system = rng.choice(SYSTEM_PROMPTS)
    if rng.random() < 0.3:  # harness system prompts are long and varied: pad with generic prose
        system += "\n\n" + " ".join(rng.choice(ENGLISH) for _ in range(rng.randint(1, 12)))
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}]
    user = rng.choice(INSTRUCTIONS).format(**fmt)
    if rng.random() < 0.3:
        user = user + " " + " ".join(rng.choice(ENGLISH) for _ in range(rng.randint(1, 4)))
    messages.append({"role": "user", "content": user})
    turns = rng.randint(1, 8)
    for t in range(turns):
        calls = 2 if rng.random() < 0.08 else 1
        tool_calls = []
        for c in range(calls):
            args: Any = {"command": _command(rng)}
            if rng.random() < 0.3:  # harnesses echo arguments back as a JSON string
                args = json.dumps(args)
            tool_calls.append({"id": f"call_{t}_{c}", "type": "function",
                               "function": {"name": "bash", "arguments": args}})
        content = rng.choice(PREAMBLES) if rng.random() < 0.3 else ""
        messages.append({"role": "assistant", "content": content, "tool_calls": tool_calls})
        for call in tool_calls:
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": rng.choice(TOOL_OUTPUTS)})
    if rng.random() < 0.35:
        messages.append({"role": "assistant", "content": rng.choice(FINAL_ANSWERS)})
    return messages, [BASH_TOOL]


def training_texts(seed: int = 0, n: int = 200) -> list[str]:
    """``n`` rendered synthetic transcripts (also used to train the tokenizer)."""
    from agentgym.models.chat_template import CHAT_TEMPLATE

    rng = random.Random(seed)
    texts = []
    for _ in range(n):
        messages, tools = synthetic_conversation(rng)
        texts.append(_render(CHAT_TEMPLATE, messages, tools))
    return texts


def _render(template: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> str:
    from transformers.utils.chat_template_utils import render_jinja_template

    rendered: Any = render_jinja_template(conversations=[messages], tools=list(tools), chat_template=template)
    return str(rendered[0][0])


def encode_with_assistant_mask(tokenizer: Any, messages: list[dict[str, Any]],
                               tools: list[dict[str, Any]]) -> tuple[list[int], list[int]]:
    """Token ids of the rendered conversation and a mask of the tokens the assistant produced.

    Assistant tokens are everything after ``<|im_start|>assistant\\n`` up to and including
    ``<|im_end|>``: what the model samples in deployment.
    """
    text = tokenizer.apply_chat_template(messages, tools=tools, tokenize=False)
    enc = tokenizer(text, return_offsets_mapping=True, add_special_tokens=False)
    spans = []
    head, end = "<|im_start|>assistant\n", "<|im_end|>"
    pos = text.find(head)
    while pos >= 0:
        start = pos + len(head)
        stop = text.index(end, start) + len(end)
        spans.append((start, stop))
        pos = text.find(head, stop)
    mask = [int(any(a <= s < b for a, b in spans)) for s, _ in enc["offset_mapping"]]
    return list(enc["input_ids"]), mask


def warm_start(model: Any, tokenizer: Any, *, steps: int, seed: int = 0, batch_size: int = 8,
               lr: float = 6e-3, log: bool = False) -> list[float]:
    """Train ``model`` in place for ``steps`` AdamW steps on synthetic transcripts.

    Loss only on assistant tokens. Returns the loss per step. Deterministic given ``seed`` on
    CPU with one thread.
    """
    import torch

    rng = random.Random(seed + 1)
    gen = torch.Generator().manual_seed(seed)
    pool = []
    for _ in range(max(64, min(4 * steps, 2000))):
        messages, tools = synthetic_conversation(rng)
        pool.append(encode_with_assistant_mask(tokenizer, messages, tools))
    # Batches of similar lengths waste little on padding.
    pool.sort(key=lambda item: len(item[0]))
    batches = [pool[i:i + batch_size] for i in range(0, len(pool) - batch_size + 1, batch_size)]
    pad = tokenizer.pad_token_id
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=0.01)
    warmup = max(1, steps // 10)

    def lr_at(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    model.train()
    losses: list[float] = []
    t0 = time.perf_counter()
    for step in range(steps):
        batch = batches[int(torch.randint(len(batches), (1,), generator=gen))]
        width = max(len(ids) for ids, _ in batch)
        ids_BT = torch.full((len(batch), width), pad, dtype=torch.long)
        labels_BT = torch.full((len(batch), width), -100, dtype=torch.long)
        attn_BT = torch.zeros((len(batch), width), dtype=torch.long)
        for row, (ids, mask) in enumerate(batch):
            n = len(ids)
            ids_BT[row, :n] = torch.tensor(ids)
            attn_BT[row, :n] = 1
            labels_BT[row, :n] = torch.where(torch.tensor(mask, dtype=torch.bool), torch.tensor(ids), -100)
        loss = model(input_ids=ids_BT, attention_mask=attn_BT, labels=labels_BT).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if log and (step % 25 == 0 or step == steps - 1):
            print(f"warm start step {step + 1}/{steps} loss {losses[-1]:.3f} ({time.perf_counter() - t0:.1f} s)")
    model.eval()
    return losses


def tool_call_rate(model: Any, tokenizer: Any, *, samples: int = 50, temperature: float = 0.8,
                   max_new_tokens: int = 96, seed: int = 0) -> dict[str, float]:
    """Sample first replies to fresh synthetic prompts; measure how often they are well formed.

    A reply is a well-formed tool call when it is ``[text\\n]<tool_call>\\n{json}\\n</tool_call>``
    (one or more) ending in ``<|im_end|>``, each JSON object has ``name == "bash"`` and a string
    ``arguments.command``. A final answer is plain text ending in ``<|im_end|>``.
    """
    import torch

    rng = random.Random(seed + 7)
    torch.manual_seed(seed)
    ok = answers = 0
    for _ in range(samples):
        messages, tools = synthetic_conversation(rng)
        # Cut the transcript right before a random assistant turn.
        cuts = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
        prompt_msgs = messages[: rng.choice(cuts)]
        prompt = tokenizer.apply_chat_template(prompt_msgs, tools=tools, add_generation_prompt=True, tokenize=False)
        ids = torch.tensor([tokenizer(prompt, add_special_tokens=False)["input_ids"]])
        out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=True, temperature=temperature,
                             top_p=1.0, top_k=0, max_new_tokens=max_new_tokens,
                             eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
        text = tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=False)
        kind = classify_reply(text)
        ok += kind == "tool_call"
        answers += kind == "answer"
    return {"tool_call": ok / samples, "answer": answers / samples,
            "malformed": (samples - ok - answers) / samples}


def classify_reply(text: str) -> str:
    """``tool_call``, ``answer`` or ``malformed`` for one sampled assistant reply (see above)."""
    if not text.endswith("<|im_end|>"):
        return "malformed"
    body = text[: -len("<|im_end|>")]
    if "<tool_call>" not in body and "</tool_call>" not in body:
        return "answer" if body.strip() and "<|im_start|>" not in body else "malformed"
    head, _, rest = body.partition("<tool_call>\n")
    if head and not head.endswith("\n"):
        return "malformed"
    blocks = ("<tool_call>\n" + rest).split("\n<tool_call>\n") if rest else []
    if not blocks:
        return "malformed"
    for i, block in enumerate(blocks):
        if i == 0:
            block = block[len("<tool_call>\n"):]
        if not block.endswith("\n</tool_call>"):
            return "malformed"
        try:
            call = json.loads(block[: -len("\n</tool_call>")])
        except json.JSONDecodeError:
            return "malformed"
        if not (isinstance(call, dict) and call.get("name") == "bash" and isinstance(call.get("arguments"), dict)
                and isinstance(call["arguments"].get("command"), str)):
            return "malformed"
    return "tool_call"
