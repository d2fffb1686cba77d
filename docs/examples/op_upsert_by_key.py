"""Load consecutive order export files into one table, one row per order: an upsert by ``Id``.

With ``lookback`` an order can be in two consecutive files (the second re-reads the end of the first's window),
so a consumer must upsert by key, not append. docs/operators.md includes the function below;
tests/docs/test_examples_c.py runs it on two files exported from the local Norce simulator.

    python op_upsert_by_key.py orders.sqlite 2026-11-10.jsonl 2026-11-11.jsonl
"""

from __future__ import annotations

# [START upsert_by_key]
import json
import sqlite3

UPSERT = """
INSERT INTO orders (Id, Updated, Created, Body) VALUES (?, ?, ?, ?)
ON CONFLICT (Id) DO UPDATE SET Updated = excluded.Updated, Created = excluded.Created, Body = excluded.Body
WHERE julianday(coalesce(excluded.Updated, excluded.Created))
   >= julianday(coalesce(orders.Updated, orders.Created))
"""


def load_orders(database: str, *files: str) -> int:
    """Upsert every order of ``files`` by Id; a row never replaces a newer version of its order."""
    db = sqlite3.connect(database)
    try:
        with db:  # one transaction: all files or none
            db.execute(
                "CREATE TABLE IF NOT EXISTS orders (Id INTEGER PRIMARY KEY, Updated TEXT, Created TEXT, Body TEXT)"
            )
            for path in files:
                with open(path, encoding="utf-8") as lines:
                    orders = (json.loads(line) for line in lines if line.strip())
                    db.executemany(
                        UPSERT,
                        ((o["Id"], o.get("Updated"), o.get("Created"), json.dumps(o)) for o in orders),
                    )
        return int(db.execute("SELECT count(*) FROM orders").fetchone()[0])
    finally:
        db.close()


# [END upsert_by_key]

if __name__ == "__main__":
    import sys

    print(load_orders(sys.argv[1], *sys.argv[2:]))
