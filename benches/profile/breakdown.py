#!/usr/bin/env python3
"""Per-message CPU breakdown from `perf script -F comm,ip,sym,dso` of a
dwarf call-graph recording.

usage: breakdown.py SCRIPT.txt FREQ MESSAGES LIB_DIR

Each sample is one 1/FREQ s of CPU. Samples of the `cargo` process, and
stacks through the bench's own codec micro-measurement or the library
load, are left out. Each sample is put in one category: the leaf's,
except that allocator / memcpy / generic poll leaves are charged to the
first caller frame that has a category ("allocator for X")."""
import sys, re, subprocess, bisect, collections

path, freq, messages, lib_dir = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]

_syms = {}
def module_sym(lib, addr):
    if lib not in _syms:
        out = subprocess.run(["nm", "-C", "--defined-only", "-n", f"{lib_dir}/{lib}"], capture_output=True, text=True).stdout
        addrs, names = [], []
        for line in out.splitlines():
            p = line.split(" ", 2)
            if len(p) == 3 and p[1].lower() in "tw":
                addrs.append(int(p[0], 16)); names.append(p[2])
        sec = subprocess.run(["readelf", "-S", "-W", f"{lib_dir}/{lib}"], capture_output=True, text=True).stdout
        delta = 0
        for l in sec.splitlines():
            f = l.split()
            if ".text" in f:
                i = f.index(".text"); delta = int(f[i+2], 16) - int(f[i+3], 16)
        _syms[lib] = (addrs, names, delta)
    addrs, names, delta = _syms[lib]
    i = bisect.bisect_right(addrs, addr + delta) - 1
    return "[module] " + (names[i] if i >= 0 else hex(addr))

samples = []
comm, frames = None, []
for line in open(path, errors="replace"):
    if not line.strip():
        if comm is not None:
            samples.append((comm, frames))
        comm, frames = None, []
        continue
    if not line.startswith("\t") and not line.startswith(" " * 8):
        comm, frames = line.strip(), []
        continue
    m = re.match(r"\s*([0-9a-f]+)\s+(.*)\s+\((.*)\)\s*$", line)
    if not m:
        continue
    ip, sym, dso = m.group(1), m.group(2), m.group(3)
    lm = re.search(r"(lib\w+?)\.\d+\.\d+\.so", dso)
    if lm and sym.startswith("[unknown]"):
        sym = module_sym(lm.group(1) + ".so", int(ip, 16))
    elif lm:
        sym = "[module] " + sym
    if "kernel.kallsyms" in dso:
        sym = "[kernel] " + sym
    frames.append(sym)
if comm is not None:
    samples.append((comm, frames))

RULES = [
    ("metrics (ctx.counter / counter handle)", r"metrics|::counter\b|HostCtx>::counter|Ctx::counter|Generational"),
    ("msgpack encode/decode", r"(?i)rmp|serde|serializ|__visitor|__fieldvisitor|visit_|from_utf8|ModuleHandle<P>::encode|::codec|to_vec_named|from_slice"),
    ("module boundary (FFI call, catch_unwind, RResult/RVec, abi_stable)", r"molt_abi|abi_stable|Behaviour|\[module\]"),
    ("molt host: routing, delivery, status counters", r"molt_runtime|arc_swap|molt::"),
    ("actor loop and mailbox (ractor's code, with the actor's handle body inlined)", r"ractor::"),
    ("tokio channels (mpsc, oneshot)", r"tokio::sync"),
    ("tokio scheduler, wake-ups", r"tokio::runtime|tokio::task|waker|Waker|park"),
    ("kernel (futex, scheduling, page faults)", r"\[kernel\]"),
    ("bench code (sender loop, plain actors' handlers)", r"throughput::|savina::|Bench|plain::"),
]
GENERIC = r"malloc|free|memmove|memcpy|memset|memcmp|alloc::|core::ptr|RawVec|finish_grow|core::future|Pin<P>|PollFn|std::|core::|__rust|\[unknown\]|^_|clock_gettime|vdso"
SKIP = r"codec_ns|copy_file_range|Loader|load_library|cargo_build|Node::start|dlopen|_dl_"

def strip_generics(sym):
    out, depth = [], 0
    for ch in sym:
        if ch == "<":
            depth += 1
            if depth == 1:
                out.append("<>")
            continue
        if ch == ">" and depth:
            depth -= 1
            continue
        if depth == 0:
            out.append(ch)
    return "".join(out)

def category(sym):
    # The metric handles first, whoever's method it is.
    if re.search(RULES[0][1], sym):
        return RULES[0][0]
    # `<X as Trait>::f` runs X's code: X decides.
    m = re.match(r"\s*(\[module\] )?<(.*?) as (.*?)>::(.*)$", sym)
    bare = ((m.group(1) or "") + strip_generics(m.group(2))) if m else strip_generics(sym)
    for name, rx in RULES[1:]:
        if re.search(rx, bare):
            return name
    return None

counts = collections.Counter()
detail = collections.Counter()
kept = 0
for comm, frames in samples:
    if comm.startswith("cargo") or not frames:
        continue
    if any(re.search(SKIP, f) for f in frames):
        continue
    kept += 1
    leaf = frames[0]
    alloc = re.search(r"malloc|free|realloc|memmove|memcpy|memset|finish_grow|RawVec|alloc::", leaf)
    cat = None if alloc else category(leaf)
    owner = None
    if cat is None and alloc and re.search(r"memmove|memcpy", leaf) and len(frames) > 1 and "handle_message" in frames[1]:
        cat = "memcpy of the actor's handle future (in ractor's handle_message)"
    if cat is None:
        for f in frames[1:]:
            c = category(f)
            if c and not c.startswith("kernel"):
                owner = c
                leaf = leaf[:30] + " <- " + f
                break
        cat = owner or "other"
        if alloc:
            kind = "memcpy" if re.search(r"memmove|memcpy|memset", leaf) else "allocator"
            cat = f"{kind} for: {cat}"
    counts[cat] += 1
    detail[(cat, leaf[:110])] += 1

ns = lambda n: n / freq / messages * 1e9
total = sum(counts.values())
if "--tsv" in sys.argv:
    for cat, n in counts.most_common():
        print(f"{cat}\t{ns(n):.1f}")
    print(f"TOTAL\t{ns(total):.1f}")
    sys.exit(0)
print(f"samples kept: {kept} ({total / freq:.2f} s of CPU) over {messages:.0f} messages: {ns(total):.0f} ns of CPU per message")
print("| where | CPU per message | share |")
print("|---|---|---|")
for cat, n in counts.most_common():
    print(f"| {cat} | {ns(n):.0f} ns | {100 * n / total:.0f} % |")
if "-v" in sys.argv:
    print()
    for (cat, leaf), n in detail.most_common(60):
        print(f"{100*n/total:5.1f}%  {cat[:40]:40}  {leaf}")
