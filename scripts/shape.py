#!/usr/bin/env python3
"""Measures the shape of src/: file import cycles, the longest functions, test binaries.

Usage: python3 scripts/shape.py [--cycles] [--long N]

Import edges are read from `crate::…`, `super::…` and `self::…` paths in code lines
(comments skipped); a path to a name re-exported by a `mod.rs` is resolved to the file that
defines the name. The layer rule itself is checked by tests/it/layering.rs; this script gives
the figures for notes.
"""
import os
import re
import sys
from collections import defaultdict

SRC = "src"


def files():
    out = []
    for root, _, names in os.walk(SRC):
        for n in names:
            if n.endswith(".rs"):
                out.append(os.path.join(root, n))
    return sorted(out)


def module_of(path):
    rel = os.path.relpath(path, SRC)[:-3].split(os.sep)
    if rel[-1] == "mod":
        rel = rel[:-1]
    if rel in (["lib"], ["main"]):
        return []
    return rel


def code_lines(path):
    out = []
    for line in open(path, encoding="utf-8"):
        s = line.strip()
        if s.startswith("//"):
            continue
        out.append(line.split("//")[0] if "\"" not in line else line)
    return out


def strip_tests(lines):
    """Drops `#[cfg(test)] mod tests { … }` blocks (unit tests may import anything below)."""
    out, skip, depth = [], False, 0
    i = 0
    while i < len(lines):
        line = lines[i]
        if not skip and line.strip() == "#[cfg(test)]" and i + 1 < len(lines) and re.match(r"\s*mod \w+ \{", lines[i + 1]):
            skip, depth = True, 0
            i += 1
            continue
        if skip:
            depth += line.count("{") - line.count("}")
            if depth <= 0 and "}" in line:
                skip = False
            i += 1
            continue
        out.append(line)
        i += 1
    return out


DEF = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?(?:unsafe\s+)?(?:async\s+)?(?:const\s+)?(?:struct|enum|fn|trait|type|const|static|union|macro_rules!)\s+([A-Za-z_][A-Za-z0-9_]*)")


def definitions(all_files):
    defs = defaultdict(list)  # (module tuple, name) -> file
    for f in all_files:
        mod = tuple(module_of(f))
        for line in strip_tests(code_lines(f)):
            m = DEF.match(line)
            if m:
                defs[(mod, m.group(1))].append(f)
    return defs


def file_for(mod):
    base = os.path.join(SRC, *mod)
    if os.path.exists(base + ".rs"):
        return base + ".rs"
    if os.path.exists(os.path.join(base, "mod.rs")):
        return os.path.join(base, "mod.rs")
    return None


def resolve(segments, defs):
    """The file a `crate::a::b::C` path names: the deepest module file, then the defining
    file of the name below it (through re-exports)."""
    mod = []
    for i, s in enumerate(segments):
        if file_for(mod + [s]):
            mod.append(s)
        else:
            break
    rest = segments[len(mod):]
    if rest:
        name = rest[0]
        # search the module's subtree for the definition
        hits = [f for (m, n), fs in defs.items() if n == name and tuple(m[: len(mod)]) == tuple(mod) for f in fs]
        if len(hits) == 1:
            return hits[0]
        if hits:
            own = file_for(mod)
            return own if own in hits else sorted(hits)[0]
    return file_for(mod)


USE = re.compile(r"\buse\s+((?:crate|super|self)(?:::[^;]*)?);", re.S)
INLINE = re.compile(r"\b(crate|super)((?:::[A-Za-z_][A-Za-z0-9_]*)+)")


def expand(tree):
    """Expands a use tree `a::{b, c::{D, E}}` into flat paths."""
    tree = re.sub(r"\s+", "", tree)
    m = re.match(r"^([^{]*)\{(.*)\}$", tree)
    if not m:
        return [re.sub(r"\bas\w+$", "", tree.replace(" as ", "as"))]
    prefix, body = m.group(1), m.group(2)
    parts, depth, cur = [], 0, ""
    for ch in body:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        cur += ch
    if cur:
        parts.append(cur)
    out = []
    for p in parts:
        for q in expand(p):
            out.append(prefix + q)
    return out


def absolute(path_segments, mod):
    segs = list(path_segments)
    base = list(mod)
    if segs[0] == "crate":
        return segs[1:]
    # `self::` in a file names its own module; `super::` its parent's
    if segs[0] == "self":
        return base + segs[1:]
    while segs and segs[0] == "super":
        base = base[:-1]
        segs = segs[1:]
    return base + segs


def edges(all_files, defs):
    out = defaultdict(set)
    for f in all_files:
        mod = module_of(f)
        is_mod = f.endswith("mod.rs") or f.endswith("lib.rs")
        text = "".join(strip_tests(code_lines(f)))
        paths = []
        for m in USE.finditer(text):
            stmt_start = text.rfind("\n", 0, m.start()) + 1
            prefix = text[stmt_start : m.start()]
            if "pub" in prefix and is_mod:
                continue  # a parent's re-export of its child is not a dependency
            for p in expand(m.group(1)):
                paths.append(p.split("::"))
        for m in INLINE.finditer(text):
            paths.append([m.group(1)] + m.group(2).split("::")[1:])
        for segs in paths:
            segs = [s for s in segs if s and s != "*" and s != "self"] or []
            if not segs:
                continue
            if segs[0] not in ("crate", "super", "self"):
                continue
            absol = absolute(segs, mod)
            target = resolve(absol, defs)
            if target and target != f and not f.endswith(("lib.rs", "main.rs")):
                out[f].add(target)
    return out


def cycles(graph):
    index, low, stack, on, comps, counter = {}, {}, [], set(), [], [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in list(graph):
        if v not in index:
            strong(v)
    return comps


FN = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?(?:const\s+)?(?:unsafe\s+)?(?:extern\s+\"C\"\s+)?fn\s+([A-Za-z_][A-Za-z0-9_]*)")


def long_functions(all_files):
    out = []
    for f in all_files:
        lines = open(f, encoding="utf-8").read().split("\n")
        i = 0
        while i < len(lines):
            m = FN.match(lines[i])
            if m and not lines[i].rstrip().endswith(";"):
                depth, started, j = 0, False, i
                while j < len(lines):
                    code = lines[j].split("//")[0]
                    code = re.sub(r"'.'|'\\.'", "", re.sub(r'"(\\.|[^"\\])*"', '""', code))
                    depth += code.count("{") - code.count("}")
                    if "{" in code:
                        started = True
                    if started and depth <= 0:
                        break
                    if not started and code.rstrip().endswith(";"):
                        break
                    j += 1
                out.append((j - i + 1, f, m.group(1), i + 1))
            i += 1
    return sorted(out, reverse=True)


def main():
    all_files = files()
    defs = definitions(all_files)
    graph = edges(all_files, defs)
    comps = cycles(graph)
    print(f"files: {len(all_files)}, lines: {sum(len(open(f).readlines()) for f in all_files)}")
    print(f"file import cycles: {len(comps)}")
    for c in comps:
        print("  " + " ↔ ".join(c))
    n = int(sys.argv[sys.argv.index("--long") + 1]) if "--long" in sys.argv else 100
    longs = [x for x in long_functions(all_files) if x[0] > n]
    print(f"functions over {n} lines: {len(longs)}")
    for length, f, name, line in longs:
        print(f"  {length:4d} {f}:{line} {name}")
    tests = [t for t in os.listdir("tests") if t.endswith(".rs")]
    dirs = [d for d in os.listdir("tests") if os.path.isfile(os.path.join("tests", d, "main.rs"))]
    print(f"test binaries: {len(tests) + len(dirs)} ({', '.join(sorted(tests + [d + '/' for d in dirs]))})")
    if "--edges" in sys.argv:
        for f in sorted(graph):
            print(f, "->", ", ".join(sorted(graph[f])))


if __name__ == "__main__":
    main()
