"""The GUI tasks: what the agent is told, how the app's final state is graded, and an oracle
that solves each task through the action server (so oracle = 1 shows the action path works).

=============  ==========  ======================================================================
task           app         what it takes
=============  ==========  ======================================================================
``tk-form``    Tk form     click two text fields and type in them, pick a radio button, tick a
                           checkbox, press Submit
``tk-todo``    Tk list     double-click an item (done), drag one to the top, scroll to the last
                           one, select it and press Delete, type a new item and press Enter
``web-cart``   chromium    click + buttons, type a coupon code and press Enter, press Check out
=============  ==========  ======================================================================

Grading reads only the state the app wrote (``/var/lib/agentgym-gui/state.json``), never pixels.
Each grader returns named checks; the reward is 1 when all hold.

>>> spec = TASKS["tk-form"]
>>> checks = spec.grade({"submitted": True, "name": "Ada Lovelace", "email": "ada@example.org",
...                      "plan": "Pro", "newsletter": True}, spec.params)
>>> all(checks.values()), spec.grade(None, spec.params)
(True, {'state': False})
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from agentgym.envs.gui.client import ActionClient, Observation, center
from agentgym.errors import EnvError

__all__ = ["APPS", "TASKS", "GuiApp", "GuiTaskSpec"]

Grader = Callable[[Any, Mapping[str, Any]], dict[str, bool]]
Oracle = Callable[[ActionClient, Mapping[str, Any]], Awaitable[Observation]]


@dataclass(frozen=True)
class GuiApp:
    """An app of the suite: ``apps/<name>``, and whether its image needs the browser."""

    name: str
    browser: bool = False
    memory: str = "1g"


@dataclass(frozen=True)
class GuiTaskSpec:
    id: str
    app: str
    instruction: str
    params: Mapping[str, Any]
    grade: Grader
    oracle: Oracle
    tags: tuple[str, ...] = field(default_factory=tuple)


APPS = {
    "form": GuiApp("form"),
    "todo": GuiApp("todo"),
    "cart": GuiApp("cart", browser=True, memory="2g"),
}


def _expect(obs: Observation, ok: bool, what: str) -> Observation:
    if obs.error or not ok:
        raise EnvError(f"oracle: {what} failed ({obs.error or 'the app did not change as expected'})\n{obs.text()[:3000]}")
    return obs


# -- tk-form ---------------------------------------------------------------------------------------
FORM = {"name": "Ada Lovelace", "email": "ada@example.org", "plan": "Pro", "newsletter": True}


def grade_form(state: Any, p: Mapping[str, Any]) -> dict[str, bool]:
    if not isinstance(state, dict):
        return {"state": False}
    return {
        "submitted": state.get("submitted") is True,
        "name": str(state.get("name", "")).strip() == p["name"],
        "email": str(state.get("email", "")).strip().lower() == p["email"],
        "plan": state.get("plan") == p["plan"],
        "newsletter": state.get("newsletter") is p["newsletter"],
    }


async def solve_form(gui: ActionClient, p: Mapping[str, Any]) -> Observation:
    obs = await gui.observe()
    for field_name, text in (("Full name", p["name"]), ("Email", p["email"])):
        await gui.click_on(obs.find("textbox", field_name))
        typed = await gui.type(text)
        _expect(typed, typed.find("textbox", field_name).get("value") == text, f"typing into {field_name}")
    picked = await gui.click_on(obs.find("radio", p["plan"]))
    _expect(picked, "checked" in picked.find("radio", p["plan"])["states"], f"choosing {p['plan']}")
    box = picked.find("checkbox", "Send me the newsletter")
    if ("checked" in box["states"]) != p["newsletter"]:
        ticked = await gui.click_on(box)
        _expect(ticked, ("checked" in ticked.find("checkbox", box["name"])["states"]) == p["newsletter"],
                "ticking the newsletter box")
    done = await gui.click_on(obs.find("button", "Submit"))
    return _expect(done, any("Thank you" in str(n.get("name")) for n in done.tree), "submitting")


# -- tk-todo ---------------------------------------------------------------------------------------
TODO_ITEMS = ("Water the plants", "Pay rent", "Reply to Sam", "Book dentist", "Call the plumber", "Renew passport",
              "Clean the garage", "Buy birthday gift", "Fix the bike", "Backup laptop", "Read chapter 4",
              "Plan the trip", "Cancel gym trial", "Old reminder")
TODO = {"done": "Pay rent", "top": "Call the plumber", "delete": "Old reminder", "add": "Buy stamps"}


def grade_todo(state: Any, p: Mapping[str, Any]) -> dict[str, bool]:
    items = state.get("items") if isinstance(state, dict) else None
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        return {"state": False}
    texts = [str(i.get("text")) for i in items]
    done = {str(i.get("text")) for i in items if i.get("done") is True}
    expected_rest = [t for t in TODO_ITEMS if t not in (p["top"], p["delete"])]
    return {
        "top": texts[:1] == [p["top"]],
        "done": done == {p["done"]},
        "deleted": p["delete"] not in texts,
        "added": texts[-1:] == [p["add"]],
        "others unchanged": [t for t in texts if t not in (p["top"], p["add"])] == expected_rest,
    }


def _item(obs: Observation, text: str) -> dict[str, Any]:
    for node in obs.tree:
        if node.get("role") == "listitem" and str(node.get("name", ""))[4:] == text:
            return dict(node)
    raise EnvError(f"oracle: no list item {text!r}:\n{obs.text()[:3000]}")


async def solve_todo(gui: ActionClient, p: Mapping[str, Any]) -> Observation:
    obs = await gui.observe()
    toggled = await gui.click_on(_item(obs, p["done"]), double=True)
    _expect(toggled, _item(toggled, p["done"])["name"].startswith("[x]"), f"double-clicking {p['done']!r}")
    first = toggled.find("listitem")
    x, y = center(_item(toggled, p["top"]))
    dragged = await gui.drag(x, y, *center(first))
    _expect(dragged, dragged.find("listitem")["name"][4:] == p["top"], f"dragging {p['top']!r} to the top")
    lx, ly = center(dragged.find("list", "To-do items"))
    scrolled = await gui.scroll(lx, ly, 10)
    target = _item(scrolled, p["delete"])
    _expect(scrolled, target.get("bounds") is not None, f"scrolling to {p['delete']!r}")
    selected = await gui.click_on(target)
    _expect(selected, "selected" in _item(selected, p["delete"])["states"], f"selecting {p['delete']!r}")
    deleted = await gui.key("Delete")
    _expect(deleted, all(str(n.get("name", ""))[4:] != p["delete"] for n in deleted.tree), "pressing Delete")
    await gui.click_on(deleted.find("textbox", "New item"))
    added = await gui.type(p["add"] + "\n")
    return _expect(added, _item(added, p["add"]) is not None, f"adding {p['add']!r}")


# -- web-cart --------------------------------------------------------------------------------------
CART = {"cart": {"apple": 3, "banana": 1}, "coupon": "SAVE10"}
PRODUCTS = {"apple": "Apples", "pear": "Pears", "banana": "Bananas", "cherry": "Cherries"}


def grade_cart(state: Any, p: Mapping[str, Any]) -> dict[str, bool]:
    if not isinstance(state, dict) or not isinstance(state.get("cart"), dict):
        return {"state": False}
    cart = {k: v for k, v in state["cart"].items() if v}
    return {
        "cart": cart == dict(p["cart"]),
        "coupon": state.get("coupon") == p["coupon"],
        "checked out": state.get("checked_out") is True,
    }


async def solve_cart(gui: ActionClient, p: Mapping[str, Any]) -> Observation:
    obs = await gui.observe()
    for product, count in p["cart"].items():
        for _ in range(count):
            obs = _expect(await gui.click_on(obs.find("button", f"Add one {PRODUCTS[product]}")), True,
                          f"adding {PRODUCTS[product]}")
    await gui.click_on(obs.find("textbox", "Coupon code"))
    applied = await gui.type(p["coupon"] + "\n")
    _expect(applied, any(n.get("name") == "Coupon applied" for n in applied.tree), "applying the coupon")
    done = await gui.click_on(applied.find("button", "Check out"))
    return _expect(done, any(str(n.get("name", "")).startswith("Order placed") for n in done.tree), "checking out")


TASKS: dict[str, GuiTaskSpec] = {
    "tk-form": GuiTaskSpec(
        id="tk-form", app="form", params=FORM, grade=grade_form, oracle=solve_form, tags=("click", "type", "form"),
        instruction=f"The window shows a registration form. Create an account for {FORM['name']} with the email "
                    f"{FORM['email']} on the {FORM['plan']} plan, subscribed to the newsletter, and submit the form."),
    "tk-todo": GuiTaskSpec(
        id="tk-todo", app="todo", params=TODO, grade=grade_todo, oracle=solve_todo,
        tags=("double_click", "drag", "scroll", "key", "type"),
        instruction=f"In the to-do list: mark \"{TODO['done']}\" as done, move \"{TODO['top']}\" to the top of "
                    f"the list, delete \"{TODO['delete']}\", and add a new item \"{TODO['add']}\" at the end. "
                    "Leave everything else as it is."),
    "web-cart": GuiTaskSpec(
        id="web-cart", app="cart", params=CART, grade=grade_cart, oracle=solve_cart, tags=("click", "type", "browser"),
        instruction="The browser shows a fruit shop. Put exactly 3 apples and 1 banana in the cart (nothing else), "
                    f"apply the coupon code {CART['coupon']}, and check out."),
}
"""Every GUI task by id (registered as ``gui/<id>-v0``; ``gui/all-v0`` holds them all)."""
