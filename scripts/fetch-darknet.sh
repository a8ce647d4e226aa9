#!/bin/bash
# Prepare the patched Darknet tree (default: darknet/ at the repo top).
#
# Source of Darknet (pjreddie commit 61c9d02e), one of:
#   - default: Debian's source package, downloaded once into .cache/darknet/
#     with apt and checked against patches/upstream.sha256;
#   - DARKNET_SRC=/path: an existing checkout of that commit, checked against
#     patches/upstream-files.sha256 and copied (never modified).
# Then Debian's OpenCV-4 patches (0003-0005) and ours, in the order of patches/series, are
# applied in a staging dir, and the result replaces the tree in one rename.
#
# Debian patches with DARKNET_SRC: applied when the Debian tarball is already
# cached, or when OPENCV=1 (then only that small tarball is downloaded);
# otherwise skipped, which only matters for OpenCV builds.
#
# Environment: DARKNET_SRC, OPENCV (0/1), DARKNET_TREE (dir name, relative to
# the repo top; default darknet).
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
tree_name=${DARKNET_TREE:-darknet}
tree=$top/$tree_name
cache=$top/.cache/darknet
sums=$top/patches/upstream.sha256
manifest=$top/patches/upstream-files.sha256

pkg=darknet
version=0.0.0+git20180914.61c9d02e-2
orig=darknet_0.0.0+git20180914.61c9d02e.orig.tar.xz
deb=darknet_${version}.debian.tar.xz
dsc=darknet_${version}.dsc
# 0001/0002 only move install paths for the Debian package; we skip them.
debian_patches="0003-Fix-compilation-with-latest-OpenCV.patch 0004-Enable-C-11-for-OpenCV-4.patch 0005-Fix-1421-use-after-free.patch"

die() { echo "fetch-darknet: error: $*" >&2; exit 1; }

tmp_dirs=
cleanup() { [ -z "$tmp_dirs" ] || rm -rf $tmp_dirs; }
trap cleanup EXIT
trap 'exit 130' INT TERM

expected_sum() { awk -v f="$1" '$2 == f { print $1 }' "$sums"; }
sha_of() { sha256sum "$1" | cut -d' ' -f1; }

# 0: cached and correct; 1: absent. A wrong cached file is an error rather
# than a silent re-download, so a corrupted or tampered cache gets noticed.
check_cached() {
    [ -f "$cache/$1" ] || return 1
    [ "$(sha_of "$cache/$1")" = "$(expected_sum "$1")" ] ||
        die "cached $1 does not match patches/upstream.sha256; delete .cache/darknet/$1 to download it again"
}

# Download the named source-package files with apt into a temp dir, verify,
# then move them into the cache; nothing in the cache changes on failure.
download() {
    command -v apt-get >/dev/null && [ -x /usr/lib/apt/apt-helper ] ||
        die "apt is needed to download Darknet's source; or set DARKNET_SRC to a checkout of commit 61c9d02e"
    mkdir -p "$cache"
    local dl apt f uri log
    dl=$(mktemp -d "$cache/.download.XXXXXX")
    tmp_dirs="$tmp_dirs $dl"
    apt=$dl/apt log=$dl/log
    mkdir -p "$apt/sources.list.d" "$apt/lists/partial" "$apt/cache/archives/partial"
    # Mirror the system's binary entries as deb-src ones in a private apt
    # state, leaving the system apt configuration alone.
    touch "$apt/sources.list"
    [ ! -f /etc/apt/sources.list ] || sed -n 's/^[[:space:]]*deb[[:space:]]/deb-src /p' /etc/apt/sources.list > "$apt/sources.list"
    for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        case $f in
        *.list) sed -n 's/^[[:space:]]*deb[[:space:]]/deb-src /p' "$f" ;;
        *) sed 's/^Types: deb$/Types: deb-src/' "$f" ;;
        esac > "$apt/sources.list.d/${f##*/}"
    done
    local A="-o Dir::Etc::SourceList=$apt/sources.list -o Dir::Etc::SourceParts=$apt/sources.list.d -o Dir::State::Lists=$apt/lists -o Dir::Cache=$apt/cache -o Debug::NoLocking=1"
    echo "fetch-darknet: downloading $* with apt"
    apt-get $A update > "$log" 2>&1 ||
        die "apt-get update failed: $(grep -E '^(E|Err):' "$log" | tail -n1)"
    (cd "$dl" && apt-get $A source --print-uris "$pkg=$version") > "$dl/uris" 2>> "$log" ||
        die "Debian source package $pkg=$version not found: $(grep '^E:' "$log" | tail -n1)"
    for f in "$@"; do
        uri=$(awk -v f="$f" '$2 == f { gsub(/\047/, "", $1); print $1 }' "$dl/uris")
        [ -n "$uri" ] || die "apt lists no file $f for $pkg=$version"
        /usr/lib/apt/apt-helper $A download-file "$uri" "$dl/$f" "SHA256:$(expected_sum "$f")" >> "$log" 2>&1 ||
            die "download of $f failed: $(grep -E '^E:|mismatch' "$log" | head -n1 | sed 's/^[[:space:]]*//')"
        [ "$(sha_of "$dl/$f")" = "$(expected_sum "$f")" ] ||
            die "downloaded $f does not match patches/upstream.sha256"
    done
    for f in "$@"; do mv -f "$dl/$f" "$cache/$f"; done
}

# --- decide the source and its identity (cheap: no hashing of the tree) ---
for f in "$orig" "$deb" "$dsc"; do
    [ -n "$(expected_sum "$f")" ] || die "patches/upstream.sha256 lacks $f"
done
have_orig=0 have_deb=0
check_cached "$orig" && have_orig=1
check_cached "$deb" && have_deb=1
check_cached "$dsc" || true

if [ -n "${DARKNET_SRC:-}" ]; then
    # Checked on every run (about 130 small files), so a wrong or moved
    # checkout is reported even when the tree is already up to date.
    [ -d "$DARKNET_SRC" ] || die "DARKNET_SRC=$DARKNET_SRC is not a directory"
    src=$(cd "$DARKNET_SRC" && pwd)
    bad=$(cd "$src" && sha256sum --quiet -c "$manifest" 2>/dev/null | head -n1 || true)
    [ -z "$bad" ] ||
        die "DARKNET_SRC=$DARKNET_SRC is not pristine Darknet commit 61c9d02e: ${bad%%:*} differs or is missing"
    use_deb=$have_deb
    [ "${OPENCV:-0}" != 1 ] || use_deb=1
    source_id="checkout $(sha_of "$manifest")"
else
    use_deb=1
    source_id="debian $(expected_sum "$orig")"
fi
[ "$use_deb" = 0 ] || source_id="$source_id + debian patches $(expected_sum "$deb")"

# The stamp covers everything that shapes the tree: source, patches, and this
# script (its patch selection).
# patches/series: the order (scripts/export-patches.sh writes it); blank lines and # comments aside
[ -f "$top/patches/series" ] || die "patches/series is missing"
patch_files=$(sed -e 's/#.*//' -e 's/[[:space:]]*$//' -e '/^$/d' -e 's|^|patches/|' "$top/patches/series")
for p in $patch_files; do [ -f "$top/$p" ] || die "patches/series names $p, which does not exist"; done
stamp=$( {
    echo "source: $source_id"
    sha256sum "$0" | cut -d' ' -f1
    for p in $patch_files; do echo "patch: $p"; cat "$top/$p"; done
} | sha256sum | cut -d' ' -f1)

if [ -f "$tree/.tat-stamp" ] && [ "$(cat "$tree/.tat-stamp")" = "$stamp" ]; then
    exit 0
fi

# --- get the source ---
if [ -n "${DARKNET_SRC:-}" ]; then
    if [ "$use_deb" = 1 ] && [ "$have_deb" = 0 ]; then download "$deb"; fi
else
    need=
    [ "$have_orig" = 1 ] || need="$need $orig"
    [ "$have_deb" = 1 ] || need="$need $deb"
    [ -f "$cache/$dsc" ] || need="$need $dsc"
    if [ -n "$need" ]; then download $need; fi
fi

# --- build the tree in a staging dir next to the final one ---
staging=$(mktemp -d "$top/.$tree_name.staging.XXXXXX")
tmp_dirs="$tmp_dirs $staging"
new=$staging/darknet
if [ -n "${DARKNET_SRC:-}" ]; then
    mkdir "$new"
    # Copy without VCS data or outputs of a build made inside the checkout.
    tar -C "$src" --exclude=./.git --exclude=./obj --exclude=./darknet \
        --exclude=./libdarknet.a --exclude=./libdarknet.so -cf - . | tar -C "$new" --no-same-owner -xf - ||
        die "copying $DARKNET_SRC failed"
else
    tar --no-same-owner -xJf "$cache/$orig" -C "$staging" && [ -d "$new/src" ] ||
        die "$orig did not unpack to darknet/"
fi

apply() { # apply <label> <patch file>
    local log=$staging/patch.log
    if ! patch -d "$new" -p1 --forward --no-backup-if-mismatch --batch -i "$2" < /dev/null > "$log" 2>&1; then
        sed 's/^/  /' "$log" >&2
        die "patch $1 does not apply; $tree_name/ left as it was"
    fi
    ! grep -q 'with fuzz' "$log" || echo "fetch-darknet: warning: $1 applied with fuzz; refresh it" >&2
}
if [ "$use_deb" = 1 ]; then
    tar --no-same-owner -xJf "$cache/$deb" -C "$staging" debian/patches ||
        die "$deb lacks debian/patches"
    for p in $debian_patches; do apply "debian/patches/$p" "$staging/debian/patches/$p"; done
fi
for p in $patch_files; do apply "$p" "$top/$p"; done

# Keep the old timestamp of every file whose content did not change, so the
# build (which lives outside this tree) only recompiles what a patch touched;
# changed or new files get the current time so they are never "older" than
# objects built from a previous version.
(cd "$new" && find . -type f -print0 | xargs -0 -r sha256sum | LC_ALL=C sort) > "$staging/new.sums"
if [ -d "$tree" ]; then
    (cd "$tree" && find . -type f ! -name .tat-stamp -print0 | xargs -0 -r sha256sum | LC_ALL=C sort) > "$staging/old.sums"
    LC_ALL=C comm -12 "$staging/old.sums" "$staging/new.sums" | cut -c67- > "$staging/same"
    LC_ALL=C comm -13 "$staging/old.sums" "$staging/new.sums" | cut -c67- > "$staging/changed"
    (cd "$tree" && xargs -r -d '\n' cp -p --parents -t "$new" < "$staging/same")
else
    cut -c67- "$staging/new.sums" > "$staging/changed"
fi
(cd "$new" && xargs -r -d '\n' touch < "$staging/changed")
echo "$stamp" > "$new/.tat-stamp"

# --- swap in the new tree (two renames; the old one is deleted afterwards) ---
if [ -e "$tree" ] || [ -L "$tree" ]; then
    [ -d "$tree" ] && [ ! -L "$tree" ] || die "$tree exists and is not a directory"
    mv "$tree" "$staging/old"
fi
mv "$new" "$tree"
deb_note=
[ "$use_deb" = 0 ] || deb_note=" + Debian 0003-0005"
echo "fetch-darknet: prepared $tree_name/ ($(echo $patch_files | wc -w) patches$deb_note)"
