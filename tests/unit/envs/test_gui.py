"""The GUI family without Docker: the action server's pure parts (loaded from its file, as the
container runs it), PNG round trips, the gymnasium spaces and action mapping, the graders."""

from __future__ import annotations

import importlib.util
import zlib
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from agentgym import registries
from agentgym.envs.gui import TASKS, GuiEnv
from agentgym.envs.gui.client import Observation, center, decode_png, render_tree
from agentgym.envs.gui.gym import KINDS, action_space, observation_space, to_request
from agentgym.envs.gui.images import CONTAINER_DIR, DOCKERFILE, gui_image
from agentgym.errors import EnvError
from agentgym.runtime import get_backend


def load_actiond() -> ModuleType:
    spec = importlib.util.spec_from_file_location("actiond", CONTAINER_DIR / "actiond.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


actiond = load_actiond()


def test_the_servers_png_decodes_to_the_same_pixels() -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
    bgrx = np.concatenate([rgb[:, :, ::-1], np.zeros((6, 5, 1), np.uint8)], axis=2).tobytes()
    png = actiond.encode_png(bgrx, 5, 6)
    assert (decode_png(png) == rgb).all()


def test_decode_png_handles_sub_and_up_rows_and_refuses_others() -> None:
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 7
    sub = np.concatenate([rgb[0, :1], rgb[0, 1:] - rgb[0, :-1]]).reshape(-1)
    up = (rgb[1] - rgb[0]).reshape(-1)
    raw = b"\x01" + sub.tobytes() + b"\x02" + up.tobytes()
    header = actiond.encode_png(b"\0" * 4 * 6, 3, 2)  # a valid 3x2 PNG: reuse its IHDR, swap the data
    ihdr = header[8:8 + 25]

    def chunk(kind: bytes, body: bytes) -> bytes:
        return len(body).to_bytes(4, "big") + kind + body + (zlib.crc32(kind + body) & 0xFFFFFFFF).to_bytes(4, "big")

    png = header[:8] + ihdr + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    assert (decode_png(png) == rgb).all()
    paeth = header[:8] + ihdr + chunk(b"IDAT", zlib.compress(b"\x04" + bytes(9) + b"\x00" + bytes(9))) + chunk(b"IEND", b"")
    with pytest.raises(ValueError, match="filter type 4"):
        decode_png(paeth)


@pytest.mark.parametrize("combo,expected", [("enter", "Return"), ("Ctrl+A", "ctrl+A"), ("ctrl+shift+tab", "ctrl+shift+Tab"),
                                            ("f5", "F5"), ("pagedown", "Next"), ("BackSpace", "BackSpace")])
def test_key_aliases_become_xdotool_names(combo: str, expected: str) -> None:
    assert actiond.normalize_key(combo) == expected


def test_refused_keys_match_whatever_the_modifier_order() -> None:
    denied = {"ctrl+shift+w", "alt+f4"}
    assert actiond.deny_key("shift+ctrl+W", denied) and actiond.deny_key("alt+F4", denied)
    assert not actiond.deny_key("ctrl+a", denied)


def test_the_action_space_samples_into_server_requests() -> None:
    space = action_space((800, 600))
    space.seed(0)
    kinds = set()
    for _ in range(200):
        action = space.sample()
        assert action in space
        kind = KINDS[int(action["kind"])]
        kinds.add(kind)
        if kind != "submit":
            request = to_request(action)
            assert request["action"] == kind
            if "x" in request:
                assert 0 <= request["x"] < 800 and 0 <= request["y"] < 600
    assert kinds == set(KINDS)


def test_hand_written_actions_name_their_kind() -> None:
    assert to_request({"kind": "drag", "x": 1, "y": 2, "x2": 3, "y2": 4}) == \
        {"action": "drag", "x": 1, "y": 2, "x2": 3, "y2": 4}
    assert to_request({"kind": "scroll", "x": 1, "y": 2, "amount": -3})["amount"] == -3
    assert to_request({"kind": "type", "text": "hi\n"}) == {"action": "type", "text": "hi\n"}
    assert to_request({"kind": "click", "x": 1, "y": 2, "button": 2})["button"] == "right"
    with pytest.raises(EnvError, match="unknown action kind"):
        to_request({"kind": "teleport"})


def test_the_observation_space_holds_a_screen_and_the_tree_text() -> None:
    space = observation_space((800, 600))
    obs = {"screen": np.zeros((600, 800, 3), np.uint8), "text": 'button "Submit" @ 1,2 3x4'}
    assert obs in space


def test_the_tree_renders_as_text_and_finds_nodes() -> None:
    obs = Observation(png=b"", width=800, height=600, error=None, tree=[
        {"role": "list", "name": "Items", "value": None, "states": [], "depth": 0, "bounds": [0, 0, 100, 50]},
        {"role": "listitem", "name": "[ ] a", "value": None, "states": ["offscreen"], "depth": 1, "bounds": None}])
    assert render_tree(obs.tree) == 'list "Items" @ 0,0 100x50\n  listitem "[ ] a" [offscreen]'
    assert obs.find("listitem", contains="a")["name"] == "[ ] a"
    with pytest.raises(EnvError, match="not on screen"):
        center(obs.find("listitem"))
    with pytest.raises(EnvError, match="no button"):
        obs.find("button", "Submit")


@pytest.mark.parametrize("task_id", sorted(TASKS))
def test_graders_refuse_a_missing_or_malformed_state(task_id: str) -> None:
    spec = TASKS[task_id]
    for state in (None, [], "x", {"items": "no"}, {"cart": 3}):
        assert not all(spec.grade(state, spec.params).values())


def test_todo_grader_wants_every_change_and_nothing_else() -> None:
    spec = TASKS["tk-todo"]
    items = [{"text": t, "done": t == "Pay rent"} for t in _todo_final()]
    assert all(spec.grade({"items": items}, spec.params).values())
    swapped = [items[0], items[2], items[1], *items[3:]]
    assert spec.grade({"items": swapped}, spec.params)["others unchanged"] is False
    extra_done = [{**i, "done": True} for i in items]
    assert spec.grade({"items": extra_done}, spec.params)["done"] is False


def _todo_final() -> list[str]:
    from agentgym.envs.gui.tasks import TODO, TODO_ITEMS

    rest = [t for t in TODO_ITEMS if t not in (TODO["top"], TODO["delete"])]
    return [TODO["top"], *rest, TODO["add"]]


def test_cart_grader_ignores_zero_quantities_and_wants_the_coupon_and_checkout() -> None:
    spec = TASKS["web-cart"]
    state = {"cart": {"apple": 3, "banana": 1, "pear": 0, "cherry": 0}, "coupon": "SAVE10", "checked_out": True}
    assert all(spec.grade(state, spec.params).values())
    assert not spec.grade({**state, "checked_out": False}, spec.params)["checked out"]
    assert not spec.grade({**state, "cart": {"apple": 4, "banana": 1}}, spec.params)["cart"]


def test_the_suite_registers_every_task_and_refuses_the_local_runtime() -> None:
    env = registries.envs.make("gui/all-v0")
    assert [t.id for t in env.tasks()] == sorted(TASKS)
    one = registries.envs.make("gui/tk-todo-v0")
    assert [t.id for t in one.tasks()] == ["tk-todo"]
    assert "use docker" in (env.unsupported(env.tasks()[0], get_backend("local")) or "")
    with pytest.raises(EnvError, match="no GUI task"):
        GuiEnv(task_ids=["tk-nope"])


def test_every_task_shares_one_image_and_picks_its_app() -> None:
    image, again = gui_image(), gui_image()
    assert image == again and image.image.startswith("agentgym/gui:")
    context = Path(image.context)
    assert (context / "container" / "actiond.py").is_file()
    assert {p.name for p in (context / "apps").iterdir()} == {"form", "todo", "cart"}
    # The Debian packages come before any COPY: editing an app rebuilds only the last layers.
    lines = DOCKERFILE.splitlines()
    assert lines[1].startswith("RUN apt-get") and "chromium" in lines[1] and "python3-tk" in lines[1]
    assert all(not line.startswith("COPY") for line in lines[:3])
    tasks = GuiEnv().tasks()
    assert {t.image for t in tasks} == {image.image}
    assert [t.env_vars["AGENTGYM_GUI_APP"] for t in tasks] == [
        f"/opt/agentgym-gui/apps/{TASKS[t.id].app}" for t in tasks]
    for t in tasks:
        assert (context / "apps" / TASKS[t.id].app / "app.json").is_file()
