#!/bin/bash
# Regenerates patches/ from a git checkout of the patched Darknet tree: one commit per patch on
# top of BASE (the unpatched tree: Darknet 61c9d02e with Debian's patches 0003-0005), the
# commit message being the patch's why-header. Writes patches/NNNN-<subject>.patch in
# `git format-patch` form and patches/series (their order), replacing the old ones.
#   DARKNET_GIT=/path/to/checkout [BASE=upstream] scripts/export-patches.sh
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
repo=${DARKNET_GIT:?set DARKNET_GIT to a git checkout of the patched Darknet tree}
base=${BASE:-upstream}
die() { echo "export-patches: $*" >&2; exit 1; }
git -C "$repo" rev-parse --verify -q "$base^{commit}" > /dev/null || die "$repo has no commit '$base'"
[ -z "$(git -C "$repo" status --porcelain)" ] || die "$repo has uncommitted changes"
out=$(mktemp -d "$top/patches/.export.XXXXXX")
trap 'rm -rf "$out"' EXIT
git -C "$repo" format-patch --quiet --zero-commit --no-signature --no-stat --no-numbered \
    -o "$out" "$base..HEAD"
(cd "$out" && LC_ALL=C ls [0-9]*.patch) > "$out/series"
[ -s "$out/series" ] || die "no commits between $base and HEAD"
rm -f "$top"/patches/[0-9]*.patch
mv "$out"/[0-9]*.patch "$out/series" "$top/patches/"
echo "export-patches: $(wc -l < "$top/patches/series") patches in patches/series"
