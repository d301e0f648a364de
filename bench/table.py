"""Turns the rows the benchmarks appended (JSON lines) into one table and one JSON document."""

import json
import os
import subprocess
import sys
import time

rows_path, results_path, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3])
rows = [json.loads(line) for line in open(rows_path) if line.strip()]


def number(value):
    if value is None:
        return "-"
    return f"{value:,.1f}" if value < 1000 else f"{value:,.0f}"


header = ["figure", "ferry", "compared with (same run)", "ratio", "goal", ""]
table = [header]
for row in rows:
    reference = "-"
    if row["reference"]:
        reference = f'{row["reference"]}: {number(row["reference_value"])} {row["unit"]}'
    ratio = "-" if row["ratio"] is None else f'{row["ratio"]:.2f}'
    table.append([row["figure"], f'{number(row["value"])} {row["unit"]}', reference, ratio, row["goal"],
                  "met" if row["met"] else "MISSED"])
widths = [max(len(line[i]) for line in table) for i in range(len(header))]
print()
for n, line in enumerate(table):
    print("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip())
    if n == 0:
        print("  ".join("-" * width for width in widths))
print()
for row in rows:
    print(f'- {row["figure"]}: {row["how"]}')

try:
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
except OSError:
    commit = ""
document = {
    "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    "commit": commit,
    "cores": os.cpu_count(),
    "quick": any(row["quick"] for row in rows),
    "seconds": seconds,
    "rows": rows,
}
with open(results_path, "w") as out:
    json.dump(document, out, indent=2)
print(f"\n{len(rows)} figures in {seconds} s; {sum(not r['met'] for r in rows)} missed their goal; JSON: {results_path}")
