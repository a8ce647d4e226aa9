#!/bin/bash
# The patch series (patches/series): every file listed exists and every patch is listed, each
# has a why-header, exactly one patch (the plugin interface) names struct darknet_plugin, no
# other patch includes a plugin header or names a symbol the plugin defines, and the series
# goes through scripts/darknet-git.sh import + export unchanged.
set -u
. "$(dirname "$0")/lib.sh"
cd "$top" || exit 1
series=$(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' patches/series)
missing=$(for p in $series; do [ -f "patches/$p" ] || echo "$p"; done)
unlisted=$(for f in patches/[0-9]*.patch; do grep -qxF "${f#patches/}" <<< "$series" || echo "${f#patches/}"; done)
if [ -z "$missing$unlisted" ]; then echo "PASS patch_series_lists_every_patch"
else echo "FAIL patch_series_lists_every_patch: missing '$missing', unlisted '$unlisted'"; fi

no_header=$(for p in $series; do
    # a format-patch file: the message between the Subject and the first diff holds the why
    awk '/^Subject:/{s=1; next} s && /^diff --git/{exit} s && NF{n++} END{exit !(n >= 2)}' "patches/$p" || echo "$p"
done)
[ -z "$no_header" ] && echo "PASS patch_series_why_headers" || echo "FAIL patch_series_why_headers: $no_header"

# what the plugin defines: its headers, and the global symbols of its objects (build/cpu)
headers=$(cd tat_layer && ls -- */*.h | sed 's|.*/||')
symbols=
for src in tat_layer/*/*.c; do
    obj=build/cpu/obj/$(basename "$src" .c).o
    [ -f "$obj" ] && symbols="$symbols $(nm -g --defined-only "$obj" | awk '{print $3}')"
done
if [ -z "$symbols" ]; then
    echo "FAIL patch_series_one_plugin_interface: no plugin objects in build/cpu/obj (build first)"
else
    interface=() offenders=()
    for p in $series; do
        added=$(grep -E '^\+[^+]' "patches/$p")
        grep -q 'struct darknet_plugin' <<< "$added" && interface+=("$p")
        for h in $headers; do grep -qE "#include [\"<]$h[\">]" <<< "$added" && offenders+=("$p includes $h"); done
        for s in $symbols; do grep -qw -- "$s" <<< "$added" && offenders+=("$p names $s"); done
    done
    # darknet_plugin_init is the one symbol the interface itself names: main calls it
    offenders=($(printf '%s\n' "${offenders[@]}" | grep -v "^${interface[0]:-none} names darknet_plugin_init$"))
    if [ "${#interface[@]}" -eq 1 ] && [ "${#offenders[@]}" -eq 0 ]; then
        echo "PASS patch_series_one_plugin_interface"
    else
        echo "FAIL patch_series_one_plugin_interface: interface in ${interface[*]:-none}; ${offenders[*]:-}"
    fi
fi

# import then export reproduces the files byte for byte (needs git and the cached download)
if ! command -v git > /dev/null || [ ! -f .cache/darknet/darknet_0.0.0+git20180914.61c9d02e.orig.tar.xz ]; then
    echo "SKIP patch_series_round_trip: no git or no cached Darknet download (make fetch)"
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/top/scripts" && cp -r patches "$tmp/top/" && cp scripts/darknet-git.sh "$tmp/top/scripts/"
mkdir -p "$tmp/top/.cache" && ln -s "$top/.cache/darknet" "$tmp/top/.cache/darknet"
cp -r patches "$tmp/before"
if "$tmp/top/scripts/darknet-git.sh" import "$tmp/repo" > "$tmp/log" 2>&1 &&
    "$tmp/top/scripts/darknet-git.sh" export "$tmp/repo" >> "$tmp/log" 2>&1 &&
    diff -r "$tmp/before" "$tmp/top/patches" > "$tmp/diff"; then
    echo "PASS patch_series_round_trip"
else
    echo "FAIL patch_series_round_trip: $(tail -n 2 "$tmp/log" "$tmp/diff" 2> /dev/null | tr '\n' ' ')"
fi
