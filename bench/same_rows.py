"""Whether two stores hold the same rows for the traces they imported (a trace only one
imported counts as a difference): EXCEPT both ways, strings and times made absolute
(`.venv/bin/python bench/same_rows.py BEFORE.db AFTER.db`); see docs/measurements.md."""

from __future__ import annotations

import sqlite3
import sys

# Each table as rows that mean the same in any store: ids replaced by their text, times
# on the trace's clock, and each row's count among its equals (EXCEPT works on sets).
VIEWS = {
    "events": """
        SELECT e.step, n.text, o.text, c.text, k.text, d.text, s.text, e.start_ns + r.origin_ns,
               e.dur_ns, e.nested_ns, e.correlation, count(*)
        FROM {db}.events e JOIN {db}.repeats r ON r.id = e.repeat_id
        JOIN {db}.strings n ON n.id = e.name_id LEFT JOIN {db}.strings o ON o.id = e.op_id
        LEFT JOIN {db}.strings c ON c.id = e.category_id JOIN {db}.strings k ON k.id = e.kind_id
        JOIN {db}.strings d ON d.id = e.device_id LEFT JOIN {db}.strings s ON s.id = e.stream_id
        WHERE r.run_id = ? GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11""",
    "memory_events": """
        SELECT m.ts_ns + r.origin_ns, m.bytes, m.total_allocated, m.total_reserved,
               m.peak_bytes_in_use, m.fragmentation_code, p.device, p.allocator, count(*)
        FROM {db}.memory_events m JOIN {db}.repeats r ON r.id = m.repeat_id
        JOIN {db}.pools p ON p.id = m.pool_id WHERE r.run_id = ? GROUP BY 1, 2, 3, 4, 5, 6, 7, 8""",
    "steps": """
        SELECT repeat, step, wall_ns, profiled, start_ns, peak_bytes, reserved_bytes
        FROM {db}.steps WHERE run_id = ?""",
    "figures": """
        SELECT f.grouping, f.step, k.text, f.time_ns FROM {db}.figures f
        JOIN {db}.repeats r ON r.id = f.repeat_id JOIN {db}.strings k ON k.id = f.key_id
        WHERE r.run_id = ?""",
    "kind_totals": """
        SELECT k.text, t.events, t.dur_ns FROM {db}.kind_totals t
        JOIN {db}.repeats r ON r.id = t.repeat_id JOIN {db}.strings k ON k.id = t.kind_id
        WHERE r.run_id = ?""",
    "runs": """
        SELECT device, event_count, memory_event_count, step_ms_median, basis
        FROM {db}.runs WHERE id = ?""",
}


USAGE = "usage: .venv/bin/python bench/same_rows.py BEFORE.db AFTER.db"
IMPORTED = "SELECT source_path, id FROM {db}.runs WHERE source = 'import'"


def main() -> None:
    if len(sys.argv) != 3 or sys.argv[1] in ("-h", "--help"):
        sys.exit(USAGE)
    conn = sqlite3.connect(":memory:")
    try:
        for name, path in zip("ab", sys.argv[1:]):
            conn.execute(f"ATTACH ? AS {name}", (f"file:{path}?mode=ro",))
            conn.execute(f"SELECT count(*) FROM {name}.event_rows").fetchone()
    except sqlite3.Error as err:
        sys.exit(f"same_rows: {path}: not an xprof store ({err})")
    imported = {db: dict(conn.execute(IMPORTED.format(db=db))) for db in "ab"}
    unmatched = {db: sorted(set(imported[db]) - set(imported[other]))
                 for db, other in (("a", "b"), ("b", "a"))}
    for db, paths in unmatched.items():
        for path in paths:  # a trace only one side imported cannot be shown the same
            print(f"{path}: imported into {sys.argv[1 if db == 'a' else 2]} only")
    pairs = [(path, run_a, imported["b"][path]) for path, run_a in sorted(imported["a"].items())
             if path in imported["b"]]
    if not pairs:
        sys.exit("no trace was imported into both stores")
    differing = sum(map(len, unmatched.values()))
    for path, run_a, run_b in pairs:
        found = []
        for table, view in VIEWS.items():
            a, b = view.format(db="a"), view.format(db="b")
            only_a = conn.execute(f"SELECT count(*) FROM ({a} EXCEPT {b})", (run_a, run_b)).fetchone()[0]
            only_b = conn.execute(f"SELECT count(*) FROM ({b} EXCEPT {a})", (run_b, run_a)).fetchone()[0]
            rows = conn.execute(f"SELECT count(*) FROM ({a})", (run_a,)).fetchone()[0]
            found.append(f"{table} {rows:,}" + (f" DIFFER: {only_a} only before, {only_b} only after"
                                                  if only_a or only_b else ""))
            differing += bool(only_a or only_b)
        print(f"{path}: {'; '.join(found)}")
    print("same rows" if not differing else f"{differing} tables or traces differ")
    sys.exit(1 if differing else 0)


if __name__ == "__main__":
    main()
