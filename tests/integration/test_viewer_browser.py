"""The HTML viewer in a real browser (Debian's chromium, driven by Playwright): a generated
1,000-trajectory run opens in under 2 s, rows and buttons open cards, tokens decode to the
exact text, and untrusted text (`<script>` in an observation) shows as text and never runs."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentgym import export
from agentgym.types import ErrorInfo, Segment, Step, StopReason, Trajectory
from agentgym.viewer import write_view

expect: Any = None  # playwright's, once the browser fixture has imported it

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
PAYLOAD = "<script>window.pwned = 1</script><img src=x onerror=\"window.pwned = 2\">"
N = 1000
STEPS = 8
LOAD_BUDGET_S = 2.0


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    global expect
    expect = sync_api.expect
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (scripts/test.sh installs it)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


class SegmentBuilder:
    """Token ids and masks of one segment, piece by piece."""

    def __init__(self, enc: Any) -> None:
        self.enc = enc
        self.ids: list[int] = []
        self.act: list[int] = []
        self.obs: list[int] = []
        self.turns: list[int] = []

    def add(self, text: str, role: str, turn: int) -> tuple[int, int]:
        piece = self.enc(text)
        start = len(self.ids)
        self.ids.extend(piece)
        self.act.extend([int(role == "act")] * len(piece))
        self.obs.extend([int(role == "obs")] * len(piece))
        self.turns.extend([turn] * len(piece))
        return start, len(self.ids)


def make_run(tok: Any, n: int) -> list[Trajectory]:
    """``n`` trajectories of ``STEPS`` steps, each with a real tokenized segment (~1,500 tokens)."""
    cache: dict[str, list[int]] = {}

    def enc(text: str) -> list[int]:
        if text not in cache:
            cache[text] = tok.encode(text, add_special_tokens=False)
        return cache[text]

    out = []
    for i in range(n):
        b = SegmentBuilder(enc)
        steps = []
        b.add("<|im_start|>system\nYou are a helpful agent working in a terminal.<|im_end|>\n<|im_start|>user\n",
              "tpl", -1)
        b.add(f"Task {i % 37}: write the report of the build logs into /app/report.txt.", "obs", -1)
        for k in range(STEPS):
            b.add("<|im_end|>\n<|im_start|>assistant\n", "tpl", k)
            action = f'<tool_call>\n{{"name": "bash", "arguments": {{"command": "grep -c ERROR log{k}.txt"}}}}\n</tool_call>'
            span = b.add(action + "<|im_end|>", "act", k)
            observation = (PAYLOAD if (i, k) == (7, 2) else
                           f"log{k}.txt: {k * 3 + i % 5} errors\n" + "2026-11-29 build step ok ✓ ünïcødé\n" * 6)
            b.add("\n<|im_start|>user\n<tool_response>\n", "tpl", k + 1)
            b.add(observation, "obs", k + 1)
            b.add("\n</tool_response>", "tpl", k + 1)
            steps.append(Step(index=k, call_id=f"c{i}-{k}", segment_index=0, action_span=span, observation=observation,
                              action=f"bash(grep -c ERROR log{k}.txt)", anchor=observation[:40], reward=0.0,
                              valid=k != 5))
        lps = [-0.05 * ((j % 9) + 1) if a else 0.0 for j, a in enumerate(b.act)]
        seg = Segment(input_ids=tuple(b.ids), action_mask=tuple(b.act), obs_mask=tuple(b.obs), logprobs=tuple(lps),
                      turn_index=tuple(b.turns), policy_version=(i % 3,) * len(b.ids),
                      call_ids=tuple(s.call_id for s in steps))
        error = ErrorInfo("HarnessError", "harness", PAYLOAD) if i % 50 == 49 else None
        out.append(Trajectory(
            id=f"terminal-log-report-s{i}", task_id=f"terminal/log-report-{i % 37}", session_id=f"s{i}",
            segments=(seg,), steps=tuple(steps), reward=float(i % 3 == 0), sample_index=i,
            stop_reason=StopReason.HARNESS_ERROR if error else StopReason.COMPLETED, error=error,
            harness="agentgym/react-v0", env="terminal/all-v0", sampled_tokens=sum(b.act),
            started_at=1000.0 + i, ended_at=1010.0 + i, metadata={"timings": {"image_s": 3.5}}))
    return out


@pytest.fixture(scope="module")
def page_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Trajectory], Any]:
    from agentgym.models.tiny import train_tokenizer

    tok = train_tokenizer()
    run = tmp_path_factory.mktemp("big-run")
    trajectories = make_run(tok, N)
    export.write_jsonl(trajectories, run / "episodes.jsonl")
    tok_dir = run / "tokenizer"
    tok.save_pretrained(tok_dir)
    (run / "run.json").write_text(json.dumps({"model_path": str(tok_dir)}))
    t0 = time.perf_counter()
    path = write_view(run)
    print(f"\nrendered {N} trajectories in {time.perf_counter() - t0:.2f} s: {path.stat().st_size / 1e6:.1f} MB")
    return path, trajectories, tok


def test_a_thousand_trajectories_open_in_under_two_seconds(browser: Any, page_file: Any) -> None:
    path, _, _ = page_file
    page = browser.new_page()
    try:
        times = []
        for _ in range(2):  # the first load also warms the browser's caches; both must be fast
            t0 = time.perf_counter()
            page.goto(path.as_uri(), wait_until="load")
            page.wait_for_function("window.agentgymReady !== undefined")
            times.append(time.perf_counter() - t0)
        nav = page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd")
        ready = page.evaluate("window.agentgymReady")
        print(f"\nviewer load: wall {', '.join(f'{t:.2f}' for t in times)} s; loadEventEnd {nav:.0f} ms; "
              f"script ready {ready:.0f} ms")
        assert max(times) < LOAD_BUDGET_S and nav < LOAD_BUDGET_S * 1000
        assert page.locator("#summary-table tbody tr").count() == N
        assert page.locator("section.traj").count() == N
        assert page.locator(".step").count() == 0  # nothing drawn until asked for
    finally:
        page.close()


def test_rows_and_buttons_open_cards_and_tokens_decode_exactly(browser: Any, page_file: Any) -> None:
    path, trajectories, tok = page_file
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(path.as_uri())
        page.click('#summary-table tbody tr[data-href="#t500"] td:nth-child(3)')  # a row: opens and scrolls
        card = page.locator("#t500")
        expect(card.locator(".step")).to_have_count(STEPS)  # drawn from its packed data once opened
        assert card.locator(".step.invalid").count() == 1
        assert card.locator("button.open").get_attribute("aria-expanded") == "true"
        assert page.evaluate("document.getElementById('t500').getBoundingClientRect().top") < 50
        card.locator("details.seg summary").click()  # the tokens, drawn on first open
        seg = trajectories[500].segments[0]
        expect(card.locator(".tk.act")).to_have_count(seg.num_action_tokens)
        assert card.locator(".tk").count() == len(seg)
        shown = page.evaluate("""() => {
            const toks = [...document.querySelectorAll('#t500 .toks .tk')];
            return toks.map(t => { const c = t.cloneNode(true);
                c.querySelectorAll('.ws').forEach(w => w.replaceWith(w.textContent.startsWith('·') ?
                    ' '.repeat(w.textContent.length) : '')); return c.textContent; }).join('');
        }""")
        assert shown == tok.decode(list(seg.input_ids), skip_special_tokens=False)
        title = card.locator(".tk.act").first.get_attribute("title")
        assert title is not None and title.startswith("id ") and "logprob -0." in title and "v2" in title
        page.click("#t501 button.open")  # the button toggles a card
        expect(page.locator("#t501 .step")).to_have_count(STEPS)
        page.click("#t501 button.open")
        expect(page.locator("#t501 .body")).to_be_hidden()
        page.fill("#filter", "log-report-3")
        visible = page.evaluate("[...document.querySelectorAll('#summary-table tbody tr')]"
                                ".filter(r => r.style.display !== 'none').length")
        assert visible == sum(1 for t in trajectories if "log-report-3" in t.task_id)
        assert errors == []
    finally:
        page.close()


def test_untrusted_text_shows_as_text_and_never_runs(browser: Any, page_file: Any) -> None:
    path, _, _ = page_file
    page = browser.new_page()
    try:
        page.goto(path.as_uri() + "#t7")  # trajectory 7, step 2 observed the payload
        obs = page.locator("#t7 .step").nth(2).locator("pre.obs")
        expect(obs).to_have_text(PAYLOAD)
        page.locator("#t7 details.seg summary").click()
        expect(page.locator("#t7 .toks .tk").first).to_be_visible()
        tokens = page.locator("#t7 .toks").text_content().replace("↵", "").replace("·", " ")
        assert PAYLOAD in tokens  # the same text, decoded from its token ids
        page.goto(path.as_uri() + "#t49")  # an error message holding the payload, in the card's head
        assert PAYLOAD in page.locator("#t49 .error pre").text_content()
        page.wait_for_timeout(200)
        assert page.evaluate("window.pwned") is None
        assert page.locator("main script, main img").count() == 0  # nothing from the data became markup
    finally:
        page.close()
