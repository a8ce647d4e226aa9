#!/bin/bash
# Every make target the README or the Makefile's header documents exists and its recipe
# expands (make -n, which recurses through $(MAKE) but runs nothing else), and every compile
# command in those recipes can find the project headers its source includes: a test, tool or
# benchmark program compiled without the plugin include paths is caught here, not on a user's fresh clone.
# The full runs of the long targets (bench, test-valgrind) are in .ci/run.
set -u
. "$(dirname "$0")/lib.sh"
cd "$top" || exit 1
# a make started from inside `make test` must not inherit its flags or job server
unset MAKEFLAGS MFLAGS MAKELEVEL

targets=$( { grep -oE '(^|[`#] *|^  *)make( [a-z][a-z0-9-]*)?' README.md
             sed -n '1,/^$/p' Makefile | grep -oE '#  +make( [a-z][a-z0-9-]*)?'; } |
           sed -E 's/.*make ?//; s/^$/all/' | sort -u)
[ -n "$targets" ] || { echo "FAIL make_targets_found: no 'make <target>' in README.md or the Makefile header"; exit 0; }

# check_includes <target> <dry-run log>: every compile command of a project program (bench/,
# tests/, tools/, fuzz/) finds, through its source's directory and its -I directories, every
# project header its source includes, directly or through other headers (Darknet's darknet.h
# includes the plugin's distill_layer_types.h). Prints one FAIL per missing header.
check_includes() {
    python3 - "$1" "$2" "$stub/darknet" <<'PY'
import os, re, shlex, sys
target, log, stub_tree = sys.argv[1:4]
project = {f for d in ("tat_layer", "tests", "bench", "tools", "fuzz") if os.path.isdir(d)
           for _, _, files in os.walk(d) for f in files if f.endswith(".h")}
bad = 0
for line in open(log):
    try:
        words = shlex.split(line.replace(stub_tree, "darknet"))
    except ValueError:
        continue
    if not words or os.path.basename(words[0]) not in ("cc", "gcc", "clang", "nvcc"):
        continue
    dirs = [w[2:] for w in words if w.startswith("-I") and len(w) > 2]
    for src in (w for w in words if re.match(r"(bench|tests|tools|fuzz)/.*\.c$", w)):
        seen, todo = set(), [src]
        while todo:
            f = todo.pop()
            if f in seen or not os.path.isfile(f):
                continue
            seen.add(f)
            for inc in re.findall(r'^\s*#\s*include\s+"([^"]+)"', open(f, errors="replace").read(), re.M):
                found = next((os.path.join(d, inc) for d in [os.path.dirname(f)] + dirs
                              if os.path.isfile(os.path.join(d, inc))), None)
                if found:
                    todo.append(found)
                elif os.path.basename(inc) in project:
                    print(f'FAIL make_{target}_includes: {src}: "{inc}" (from {f}) is in none of its include directories {dirs}')
                    bad = 1
sys.exit(bad)
PY
}

# A dry run builds nothing, so what an earlier step of a real run makes is missing when the
# later steps are expanded: stand-in rules for the libraries and Darknet's header, read by every
# make invocation of the run through MAKEFILES. Darknet's own Makefile is left out (a stand-in
# tree with an empty one): its build is what `make test` itself runs.
stub=$(mktemp -d)
trap 'rm -rf "$stub"' EXIT
printf '%%/libdarknet.a: ;\n%%/include/darknet.h: ;\n' > "$stub/stand-ins.mk"
mkdir -p "$stub/darknet"
printf 'all:\n\t@:\n' > "$stub/darknet/Makefile"
export MAKEFILES=$stub/stand-ins.mk

for t in $targets; do
    name=$t
    log=$(mktemp)
    if ! make -n $t DARKNET_TREE="$stub/darknet" > "$log" 2>&1; then
        echo "FAIL make_${name}_recipe: make -n $t: $(grep -m1 -iE 'error|no rule' "$log" || tail -n 1 "$log")"
    elif check_includes "$name" "$log"; then
        echo "PASS make_${name}_recipe"
    fi
    rm -f "$log"
done
