#!/bin/bash
# The plugin's folders form a stack (tat_layer/levels.mk): a file includes only headers of its
# own folder or of the folders below it, and core/ includes no Darknet header (its math takes
# raw floats and explicit shapes). One FAIL per include against the direction. Then, from the
# built objects (build/cpu/obj, and build/gpu/obj when a GPU build exists), each level exports
# only names with its prefix, and no name that Darknet's own objects define:
#   core tat_ | gpu tat_gpu_ | backend backend_ | layers distill_, and Darknet's make_/forward_/backward_/update_
#   <type>_distill_layer of the section types | train train_ | cmd cmd_, and darknet_plugin_init
#   (the plugin interface's entry point)
#   tests/test_layering.sh [DIR]    DIR: the folder holding levels.mk (default tat_layer)
set -u
. "$(dirname "$0")/lib.sh"
root=${1:-$top/tat_layer}
cd "$root" || exit 1
levels=$(sed -n 's/^TAT_LEVELS := //p' levels.mk)
[ -n "$levels" ] || { echo "FAIL layering_levels: no TAT_LEVELS in levels.mk"; exit 0; }
rank=0
declare -A level_of_header rank_of_level
for level in $levels; do
    rank_of_level[$level]=$rank
    rank=$((rank + 1))
    for h in "$level"/*.h; do [ -e "$h" ] && level_of_header[${h#*/}]=$level; done
done
bad=0 files=0
for level in $levels; do
    for f in "$level"/*.c "$level"/*.h "$level"/*.cu; do
        [ -e "$f" ] || continue
        files=$((files + 1))
        while IFS= read -r inc; do
            hl=${level_of_header[$inc]:-}
            if [ -z "$hl" ]; then
                # not a plugin header: Darknet's; core stays free of them
                if [ "$level" = core ]; then
                    echo "FAIL layering_$f: includes \"$inc\", not a core header (core has no Darknet type)"
                    bad=$((bad + 1))
                fi
            elif [ "${rank_of_level[$hl]}" -gt "${rank_of_level[$level]}" ]; then
                echo "FAIL layering_$f: includes $hl/$inc, from a folder above $level"
                bad=$((bad + 1))
            fi
        done < <(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f")
    done
done
if [ "$files" -eq 0 ]; then
    echo "FAIL layering_files: no source files in the folders $levels"
elif [ "$bad" -eq 0 ]; then
    echo "PASS layering_includes_follow_the_stack"
fi
[ -z "${1:-}" ] || exit 0

# ---- exported names --------------------------------------------------------------------------
prefix_of() { # prefix_of <level>: the extended regex its exported names match
    case $1 in
    core) echo '^tat_' ;;
    gpu) echo '^tat_gpu_' ;;
    backend) echo '^backend_' ;;
    layers) echo '^(distill_|(make|forward|backward|update)_[a-z]+_distill_layer(_gpu)?$)' ;;
    train) echo '^train_' ;;
    cmd) echo '^(cmd_|darknet_plugin_init$)' ;;
    esac
}
objdir=$top/build/cpu/obj
if [ ! -d "$objdir" ]; then
    echo "SKIP layering_exports: no build/cpu/obj (make build)"
else
    bad_names=() plugin_objs=()
    for level in $levels; do
        re=$(prefix_of "$level")
        for src in "$level"/*.c "$level"/*.cu; do
            [ -e "$src" ] || continue
            base=$(basename "${src%.*}")
            obj=$objdir/$base.o
            case $src in *.cu) obj=$top/build/gpu/obj/$base.o ;; esac
            [ -f "$obj" ] || continue
            plugin_objs+=("$base.o")
            for name in $(nm -g --defined-only "$obj" | awk '{print $3}' | grep -v '^_\|\.'); do
                [ "$level" = core ] && [[ $name == tat_gpu_* ]] && { bad_names+=("$src:$name"); continue; }
                grep -qE "$re" <<< "$name" || bad_names+=("$src:$name")
            done
        done
    done
    if [ "${#bad_names[@]}" -eq 0 ]; then echo "PASS layering_exports_carry_their_level_prefix"
    else echo "FAIL layering_exports_carry_their_level_prefix: ${bad_names[*]}"; fi
    # a plugin name that Darknet defines too would be a link-order accident waiting to happen
    darknet_names=$(for o in "$objdir"/*.o; do
        printf '%s\n' "${plugin_objs[@]}" | grep -qxF "$(basename "$o")" || nm -g --defined-only "$o" | awk '{print $3}'
    done | sort -u)
    plugin_names=$(for o in "${plugin_objs[@]}"; do [ -f "$objdir/$o" ] && nm -g --defined-only "$objdir/$o" | awk '{print $3}'; done | sort -u)
    clash=$(comm -12 <(echo "$darknet_names") <(echo "$plugin_names") | tr '\n' ' ')
    if [ -z "$clash" ]; then echo "PASS layering_exports_not_darknets"
    else echo "FAIL layering_exports_not_darknets: $clash"; fi
fi
# the check catches what it is for: a core file including a layers header, and a Darknet one
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
mkdir -p "$probe/core" "$probe/layers"
cp levels.mk "$probe/"
printf '#include "above.h"\n#include "darknet.h"\n' > "$probe/core/x.c"
: > "$probe/layers/above.h"
out=$(bash "$top/tests/test_layering.sh" "$probe")
if [ "$(grep -c '^FAIL layering_core/x.c' <<< "$out")" = 2 ]; then
    echo "PASS layering_check_catches_wrong_includes"
else
    echo "FAIL layering_check_catches_wrong_includes: got '$out'"
fi
