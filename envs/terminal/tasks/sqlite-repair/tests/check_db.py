"""Checks for sqlite-repair against expected.json (computed from the seed data by a reference
implementation): kept customers, every order with its new owner, the constraint (tried on a copy
of the database), and the report."""

import json
import shutil
import sqlite3
import sys
import tempfile
from pathlib import Path

DB = Path("/app/shop.db")
REPORT = Path("/app/report.csv")
failures: list[str] = []


def check(ok: bool, what: str) -> None:
    print(("PASS: " if ok else "FAIL: ") + what)
    if not ok:
        failures.append(what)


def main() -> int:
    expected = json.loads(Path(sys.argv[1]).read_text())
    want_customers = {int(k): tuple(v) for k, v in expected["customers"].items()}
    want_orders = {int(k): tuple(v) for k, v in expected["orders"].items()}
    if not DB.is_file() or DB.is_symlink():
        print("FAIL: /app/shop.db is missing or not a regular file")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "shop.db"
        shutil.copy(DB, copy)  # every check, the inserts included, runs on a copy
        db = sqlite3.connect(copy)
        try:
            check(db.execute("PRAGMA integrity_check").fetchone()[0] == "ok", "integrity_check is ok")
            customers = {r[0]: (r[1], r[2]) for r in db.execute("SELECT id, name, email FROM customers")}
            check(customers == want_customers, f"customers are the {len(want_customers)} expected rows "
                  f"(found {len(customers)}: ids {sorted(customers)})")
            orders = {r[0]: (r[1], r[2], r[3]) for r in
                      db.execute("SELECT id, customer_id, placed_on, amount_cents FROM orders")}
            check(set(orders) == set(want_orders), f"all {len(want_orders)} orders are kept (found {len(orders)})")
            wrong = sorted(oid for oid in set(orders) & set(want_orders) if orders[oid] != want_orders[oid])
            check(not wrong, f"every order belongs to the kept customer, otherwise unchanged (wrong: {wrong[:5]})")
            for email in ("ANN.LEE@example.com", "mia@SOL.es", "hana@ito.jp"):
                try:
                    db.execute("INSERT INTO customers (name, email) VALUES ('Dup', ?)", (email,))
                    refused = False
                except sqlite3.IntegrityError:
                    refused = True
                check(refused, f"inserting a customer with email {email} fails")
            try:
                db.execute("INSERT INTO customers (name, email) VALUES ('New', 'new.person@example.com')")
                accepted = True
            except sqlite3.Error:
                accepted = False
            check(accepted, "a customer with a new email is accepted")
        finally:
            db.close()
    got = REPORT.read_text().strip().splitlines() if REPORT.is_file() and not REPORT.is_symlink() else []
    got = [line.strip() for line in got]
    check(got == expected["report"], "report.csv is as expected" + ("" if got == expected["report"] else
          "\nexpected:\n" + "\n".join(expected["report"]) + "\ngot:\n" + "\n".join(got)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
