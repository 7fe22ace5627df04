"""A registration form (Tk): name, email, plan, newsletter, Submit.

Submitting writes the submitted values to the state file (what the verifier reads); an invalid
submission (no name, an email without ``@``) is refused with a message and writes nothing.
"""

from __future__ import annotations

import sys
import tkinter as tk
from typing import Any

sys.path.insert(0, "/opt/agentgym-gui")
import tkaccess  # in the image, next to the action server

PLANS = ("Free", "Pro", "Team")


def main() -> None:
    root = tkaccess.setup_root("Create your account")
    submissions = 0
    frame = tk.Frame(root, padx=40, pady=30)
    frame.pack(fill="both", expand=True)
    tk.Label(frame, text="Create your account", font="{DejaVu Sans} 20 bold").grid(row=0, column=0, columnspan=3,
                                                                                  sticky="w", pady=(0, 20))
    tk.Label(frame, text="Full name").grid(row=1, column=0, sticky="w", pady=6)
    name = tk.Entry(frame, width=32)
    name.grid(row=1, column=1, columnspan=2, sticky="w")
    tkaccess.describe(name, "Full name")
    tk.Label(frame, text="Email").grid(row=2, column=0, sticky="w", pady=6)
    email = tk.Entry(frame, width=32)
    email.grid(row=2, column=1, columnspan=2, sticky="w")
    tkaccess.describe(email, "Email")
    tk.Label(frame, text="Plan").grid(row=3, column=0, sticky="nw", pady=6)
    plan = tk.StringVar(root, value="Free")
    plans = tk.Frame(frame)
    plans.grid(row=3, column=1, columnspan=2, sticky="w")
    for p in PLANS:
        tk.Radiobutton(plans, text=p, variable=plan, value=p).pack(side="left", padx=(0, 16))
    newsletter = tk.BooleanVar(root, value=False)
    tk.Checkbutton(frame, text="Send me the newsletter", variable=newsletter).grid(row=4, column=1, columnspan=2,
                                                                                   sticky="w", pady=6)
    status = tk.Label(frame, text="", fg="#a00")

    def state() -> dict[str, Any]:
        return {"name": name.get(), "email": email.get(), "plan": plan.get(), "newsletter": newsletter.get(),
                "submissions": submissions}

    def submit() -> None:
        nonlocal submissions
        if not name.get().strip():
            status.config(text="Please enter your name.", fg="#a00")
            return
        if "@" not in email.get():
            status.config(text="Please enter a valid email address.", fg="#a00")
            return
        submissions += 1
        tkaccess.write_state({"submitted": True, **state()})
        status.config(text=f"Thank you, {name.get().strip()}! Your account was created.", fg="#060")

    tk.Button(frame, text="Submit", command=submit, width=10).grid(row=5, column=1, sticky="w", pady=(20, 6))
    status.grid(row=6, column=0, columnspan=3, sticky="w", pady=6)
    tkaccess.serve(root, state=state)
    root.mainloop()


if __name__ == "__main__":
    main()
