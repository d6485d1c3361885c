#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""No circle of includes between the modules of a directory.

A module is NAME.c with NAME.h and its parts NAME-PART.c, NAME-PART.h (the
prefix says whose part it is, like systemd's machined-*.c: compile-text.c,
manager-approve.c, compile-internal.h); module A depends on module B when a
file of A includes a header of B (only headers of the same directory count). Prints one circle
and exits 1 if there is any; exits 0 otherwise. The output is TAP, one test
per directory.
    tests/include-cycles.py DIR...
"""
import os
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"/]+)\.h"')


def graph(d):
    stems = {os.path.splitext(f)[0] for f in os.listdir(d) if f.endswith('.c') or f.endswith('.h')}

    def module(name):
        for i, c in enumerate(name):
            if c == '-' and name[:i] in stems:
                return name[:i]
        return name

    deps = {}
    for f in sorted(os.listdir(d)):
        name, ext = os.path.splitext(f)
        name = module(name)
        if ext not in ('.c', '.h'):
            continue
        with open(os.path.join(d, f), encoding='utf-8') as src:
            for line in src:
                m = INCLUDE.match(line)
                if m and module(m.group(1)) != name and os.path.exists(os.path.join(d, m.group(1) + '.h')):
                    deps.setdefault(name, set()).add(module(m.group(1)))
    return deps


def find_cycle(deps):
    state = {}          # 1: on the path, 2: done
    path = []

    def visit(n):
        state[n] = 1
        path.append(n)
        for m in sorted(deps.get(n, ())):
            if state.get(m) == 1:
                return path[path.index(m):] + [m]
            if m not in state:
                c = visit(m)
                if c:
                    return c
        path.pop()
        state[n] = 2
        return None

    for n in sorted(deps):
        if n not in state:
            c = visit(n)
            if c:
                return c
    return None


def main(dirs):
    bad = 0
    print(f'1..{len(dirs)}')
    for i, d in enumerate(dirs, 1):
        c = find_cycle(graph(d))
        if c:
            print(f'not ok {i} - {d}: a circle of includes: ' + ' -> '.join(c))
            bad = 1
        else:
            print(f'ok {i} - {d}: no circle of includes between its modules')
    return bad


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
