#!/bin/bash
# The patch series as a git history, for changing a patch or adding one:
#   scripts/darknet-git.sh import DIR   a new git checkout in DIR: Darknet 61c9d02e with Debian's
#                                       patches 0003-0005 as the commit tagged `upstream`, then one
#                                       commit per patch of patches/series (its why-header the
#                                       commit message)
#   scripts/darknet-git.sh export DIR   patches/ from DIR's commits after `upstream`, in
#                                       `git format-patch` form, and patches/series in their order
# (make darknet-git / make patches DARKNET_GIT=DIR). Edit, reorder or squash the commits in DIR
# with git, then export: the headers are the commit messages.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
die() { echo "darknet-git: $*" >&2; exit 1; }
[ $# -eq 2 ] || die "usage: $0 import|export DIR"
mode=$1 repo=$2
cache=$top/.cache/darknet
version=0.0.0+git20180914.61c9d02e
git_id=(-c user.name="Darknet patches" -c user.email="patches@localhost")

case $mode in
import)
    [ ! -e "$repo" ] || die "$repo exists; import makes a new checkout"
    # the verified download of fetch-darknet.sh (a no-op when darknet/ is up to date)
    [ -f "$cache/darknet_$version.orig.tar.xz" ] && [ -f "$cache/darknet_$version-2.debian.tar.xz" ] ||
        "$top/scripts/fetch-darknet.sh"
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    tar --no-same-owner -xJf "$cache/darknet_$version.orig.tar.xz" -C "$work"
    tar --no-same-owner -xJf "$cache/darknet_$version-2.debian.tar.xz" -C "$work" debian/patches
    for p in 0003-Fix-compilation-with-latest-OpenCV.patch 0004-Enable-C-11-for-OpenCV-4.patch 0005-Fix-1421-use-after-free.patch; do
        patch -d "$work/darknet" -p1 --batch --quiet -i "$work/debian/patches/$p"
    done
    mkdir -p "$(dirname "$repo")"
    mv "$work/darknet" "$repo"
    git -C "$repo" init --quiet
    git -C "$repo" add -A
    git -C "$repo" "${git_id[@]}" commit --quiet -m "Darknet 61c9d02e with Debian's patches 0003-0005"
    git -C "$repo" tag upstream
    sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$top/patches/series" | while read -r p; do
        git -C "$repo" "${git_id[@]}" am --quiet --keep-cr --keep-non-patch "$top/patches/$p" || die "patches/$p does not apply"
    done
    echo "darknet-git: $repo holds upstream + $(git -C "$repo" rev-list --count upstream..HEAD) patches"
    ;;
export)
    git -C "$repo" rev-parse --verify -q "upstream^{commit}" > /dev/null || die "$repo has no commit tagged upstream"
    [ -z "$(git -C "$repo" status --porcelain)" ] || die "$repo has uncommitted changes"
    out=$(mktemp -d "$top/patches/.export.XXXXXX")
    trap 'rm -rf "$out"' EXIT
    git -C "$repo" format-patch --quiet --zero-commit --no-signature --no-stat --no-numbered -o "$out" upstream..HEAD
    (cd "$out" && LC_ALL=C ls [0-9]*.patch) > "$out/series.tmp"
    [ -s "$out/series.tmp" ] || die "no commits after upstream in $repo"
    # the new set replaces the old one only once it is complete
    rm -f "$top"/patches/[0-9]*.patch
    mv "$out"/[0-9]*.patch "$top/patches/"
    mv "$out/series.tmp" "$top/patches/series"
    echo "darknet-git: $(wc -l < "$top/patches/series") patches written to patches/ (patches/series)"
    ;;
*) die "usage: $0 import|export DIR" ;;
esac
