"""Placeholder replaced below."""
from __future__ import annotations
import json, csv
def print_result(cur, fmt, out):
    cols=[d[0] for d in cur.description]
    rows=cur.fetchall()
    if fmt=="json":
        json.dump([dict(zip(cols,r)) for r in rows], out, default=str); out.write("\n")
    elif fmt=="csv":
        w=csv.writer(out); w.writerow(cols); w.writerows(rows)
    else:
        print(cols, file=out)
        for r in rows: print(r, file=out)
