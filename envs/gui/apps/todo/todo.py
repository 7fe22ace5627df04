"""A to-do list (Tk): double-click toggles an item done, dragging reorders, Delete removes the
selected item, the entry at the bottom adds one (Return or the Add button). The list shows eight
rows of fourteen, so reaching the last ones takes scrolling.

Every change writes the items to the state file (what the verifier reads).
"""

from __future__ import annotations

import sys
import tkinter as tk
from typing import Any

sys.path.insert(0, "/opt/agentgym-gui")
import tkaccess  # in the image, next to the action server

ITEMS = ("Water the plants", "Pay rent", "Reply to Sam", "Book dentist", "Call the plumber", "Renew passport",
         "Clean the garage", "Buy birthday gift", "Fix the bike", "Backup laptop", "Read chapter 4",
         "Plan the trip", "Cancel gym trial", "Old reminder")


def main() -> None:
    root = tkaccess.setup_root("To-do")
    items: list[dict[str, Any]] = [{"text": t, "done": False} for t in ITEMS]
    frame = tk.Frame(root, padx=40, pady=24)
    frame.pack(fill="both", expand=True)
    tk.Label(frame, text="To-do", font="{DejaVu Sans} 20 bold").pack(anchor="w")
    tk.Label(frame, text="Double-click: done / not done.  Drag: reorder.  Delete key: remove.",
             fg="#555").pack(anchor="w", pady=(4, 10))
    box = tk.Listbox(frame, height=8, width=40, activestyle="none", exportselection=False,
                     font="{DejaVu Sans} 15")
    box.pack(anchor="w")
    tkaccess.describe(box, "To-do items")
    bar = tk.Frame(frame)
    bar.pack(anchor="w", pady=(14, 0))
    entry = tk.Entry(bar, width=28)
    entry.pack(side="left")
    tkaccess.describe(entry, "New item")
    count = tk.Label(frame, text="", fg="#555")

    def label(item: dict[str, Any]) -> str:
        return ("[x] " if item["done"] else "[ ] ") + item["text"]

    def save() -> None:
        tkaccess.write_state({"items": items})
        left = sum(not i["done"] for i in items)
        count.config(text=f"{len(items)} items, {left} left to do")

    def redraw(select: int | None = None) -> None:
        top = box.nearest(0)
        box.delete(0, "end")
        for item in items:
            box.insert("end", label(item))
        box.yview(top)
        if select is not None and 0 <= select < len(items):
            box.selection_set(select)
            box.see(select)
        save()

    drag: dict[str, int | None] = {"from": None}

    def press(event: tk.Event) -> None:
        box.focus_set()
        drag["from"] = box.nearest(event.y) if items else None

    def motion(event: tk.Event) -> None:
        start = drag["from"]
        if start is None:
            return
        target = box.nearest(event.y)
        if target != start and 0 <= target < len(items):
            items.insert(target, items.pop(start))
            drag["from"] = target
            redraw(select=target)

    def release(_event: tk.Event) -> None:
        drag["from"] = None

    def toggle(event: tk.Event) -> None:
        i = box.nearest(event.y)
        if 0 <= i < len(items):
            items[i]["done"] = not items[i]["done"]
            redraw(select=i)

    def delete(_event: tk.Event) -> None:
        chosen = box.curselection()
        if chosen:
            items.pop(chosen[0])
            redraw(select=min(chosen[0], len(items) - 1))

    def add(_event: Any = None) -> None:
        text = entry.get().strip()
        if text:
            items.append({"text": text, "done": False})
            entry.delete(0, "end")
            redraw(select=len(items) - 1)

    box.bind("<ButtonPress-1>", press, add="+")
    box.bind("<B1-Motion>", motion, add="+")
    box.bind("<ButtonRelease-1>", release, add="+")
    box.bind("<Double-Button-1>", toggle)
    box.bind("<Delete>", delete)
    entry.bind("<Return>", add)
    tk.Button(bar, text="Add", command=add, width=6).pack(side="left", padx=(10, 0))
    count.pack(anchor="w", pady=(10, 0))
    redraw()
    tkaccess.serve(root, state=lambda: {"items": items, "top": box.nearest(0)})
    root.mainloop()


if __name__ == "__main__":
    main()
