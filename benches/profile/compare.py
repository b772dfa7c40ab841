#!/usr/bin/env python3
"""compare.py MOLT.txt RACTOR.txt MESSAGES TITLE: per-message CPU by category,
molt and plain ractor side by side (run from the workspace root; the .txt
files are what profile.sh leaves)."""
import os, subprocess, sys
m_txt, r_txt, msgs, title = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
def run(t):
    out = subprocess.run(["python3", os.path.join(os.path.dirname(__file__), "breakdown.py"), t, "999", msgs, os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "release"), "--tsv"], capture_output=True, text=True).stdout
    d = {}
    for line in out.splitlines():
        k, v = line.rsplit("\t", 1); d[k] = float(v)
    return d
m, r = run(m_txt), run(r_txt)
print(f"{title}: CPU per message (all threads), molt {m['TOTAL']:.0f} ns, ractor {r['TOTAL']:.0f} ns, molt's extra {m['TOTAL'] - r['TOTAL']:.0f} ns")
print()
print("| where the CPU goes | molt | plain ractor | molt − ractor |")
print("|---|---|---|---|")
cats = sorted(set(m) | set(r), key=lambda c: -(m.get(c, 0) - r.get(c, 0)))
for c in cats:
    if c == "TOTAL": continue
    a, b = m.get(c, 0), r.get(c, 0)
    if a < 1.5 and b < 1.5: continue
    print(f"| {c} | {a:.0f} ns | {b:.0f} ns | {a - b:+.0f} ns |")
print(f"| **total** | **{m['TOTAL']:.0f} ns** | **{r['TOTAL']:.0f} ns** | **{m['TOTAL'] - r['TOTAL']:+.0f} ns** |")
