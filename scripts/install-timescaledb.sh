#!/usr/bin/env bash
# Install PostgreSQL 17 + TimescaleDB (Apache-2 edition) into a private prefix, without touching the system.
#
# Usage: install-timescaledb.sh [PREFIX]
#   PREFIX defaults to $DERIBIT_TS_PG_PREFIX, else ${DERIBIT_TS_HOME:-${XDG_DATA_HOME:-~/.local/share}/deribit-ts}/postgres
#
# Why this shape: Debian bookworm has no TimescaleDB package, and the trixie packages need glibc 2.38.
# So we download the trixie .debs (plus trixie's libc6 and every shared library the binaries need) with a
# private apt configuration, unpack them with `dpkg -x` into PREFIX, and point the PostgreSQL executables at
# the private loader and libraries with patchelf. PostgreSQL finds share/ and lib/ relative to its own
# binary, so the TimescaleDB extension in the prefix is found without any configuration.
#
# Everything (apt lists, apt cache, downloaded .debs, patchelf itself) stays inside PREFIX. patchelf is
# taken from trixie too and run through the private loader, so the host needs nothing but apt-get and dpkg.
# A second run with a complete install finishes in well under a second (marker file).
set -euo pipefail

readonly PG_MAJOR=17
readonly SUITE=trixie
readonly MIRROR="${DERIBIT_TS_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
readonly KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
readonly INSTALLER_VERSION=1
readonly MAIN_PACKAGES=(postgresql-$PG_MAJOR postgresql-$PG_MAJOR-timescaledb postgresql-client-$PG_MAJOR libc6 patchelf)

log() { printf 'install-timescaledb: %s\n' "$*" >&2; }
die() { printf 'install-timescaledb: error: %s\n' "$*" >&2; exit 1; }

default_prefix() {
    if [[ -n "${DERIBIT_TS_PG_PREFIX:-}" ]]; then
        printf '%s\n' "$DERIBIT_TS_PG_PREFIX"
    else
        printf '%s/postgres\n' "${DERIBIT_TS_HOME:-${XDG_DATA_HOME:-$HOME/.local/share}/deribit-ts}"
    fi
}

PREFIX="${1:-$(default_prefix)}"
mkdir -p "$PREFIX" || die "cannot create the prefix $PREFIX"
PREFIX="$(cd "$PREFIX" && pwd -P)"
readonly PREFIX
readonly BINDIR="$PREFIX/usr/lib/postgresql/$PG_MAJOR/bin"
readonly PKGLIBDIR="$PREFIX/usr/lib/postgresql/$PG_MAJOR/lib"
readonly LIBDIR="$PREFIX/usr/lib/x86_64-linux-gnu"
readonly LOADER="$LIBDIR/ld-linux-x86-64.so.2"
readonly CONTROL="$PREFIX/usr/share/postgresql/$PG_MAJOR/extension/timescaledb.control"
readonly MARKER="$PREFIX/.deribit-ts-installed"
readonly APT_DIR="$PREFIX/apt"
readonly DEB_DIR="$PREFIX/debs"

already_installed() {
    [[ -f "$MARKER" && -f "$CONTROL" && -x "$BINDIR/postgres" ]] || return 1
    grep -qx "installer=$INSTALLER_VERSION" "$MARKER" || return 1
    "$BINDIR/postgres" --version >/dev/null 2>&1
}

check_host() {
    [[ "$(uname -m)" == x86_64 ]] || die "only x86_64 Linux is supported (this is $(uname -m)); use the Docker setup in docker/timescale/ instead"
    command -v apt-get >/dev/null || die "apt-get is required to download the Debian packages; use the Docker setup in docker/timescale/ instead"
    command -v dpkg >/dev/null || die "dpkg is required to unpack the Debian packages"
    [[ -r "$KEYRING" ]] || die "$KEYRING is missing: install the debian-archive-keyring package"
}

# apt with its own sources, lists, cache and (empty) status file: the host's apt state is never read or written.
APT_OPTS=()
configure_apt() {
    mkdir -p "$APT_DIR/lists/partial" "$APT_DIR/cache/archives/partial" "$APT_DIR/preferences.d" "$DEB_DIR"
    printf 'deb [signed-by=%s] %s %s main\n' "$KEYRING" "$MIRROR" "$SUITE" >"$APT_DIR/sources.list"
    : >"$APT_DIR/status"
    APT_OPTS=(
        -o "Dir::Etc::sourcelist=$APT_DIR/sources.list" -o "Dir::Etc::sourceparts=-"
        -o "Dir::Etc::preferences=$APT_DIR/preferences" -o "Dir::Etc::preferencesparts=$APT_DIR/preferences.d"
        -o "Dir::State=$APT_DIR" -o "Dir::State::lists=$APT_DIR/lists" -o "Dir::State::status=$APT_DIR/status"
        -o "Dir::Cache=$APT_DIR/cache"
        -o "APT::Architecture=amd64" -o "APT::Architectures=amd64" -o "Acquire::Languages=none"
        # The sandbox user (_apt) cannot enter a prefix under a private home such as /root.
        -o "APT::Sandbox::User=$(id -un)"
        -q
    )
}

update_lists() {
    if compgen -G "$APT_DIR/lists/*_Packages*" >/dev/null; then
        log "reusing the package lists in $APT_DIR/lists"
        return
    fi
    log "fetching the Debian $SUITE package lists from $MIRROR"
    apt-get "${APT_OPTS[@]}" update >&2 || die "apt-get update of Debian $SUITE failed (is $MIRROR reachable?)"
}

# Prints the first alternative of every Depends/Pre-Depends entry of the given packages, without versions.
dependencies_of() {
    apt-cache "${APT_OPTS[@]}" show --no-all-versions "$@" 2>/dev/null | awk '
        /^(Pre-)?Depends:/ {
            sub(/^[^:]*: */, "")
            n = split($0, deps, /, */)
            for (i = 1; i <= n; i++) {
                split(deps[i], alts, / *\| */)
                name = alts[1]
                sub(/[ (].*/, "", name)
                sub(/:any$/, "", name)
                print name
            }
        }'
}

# The main packages plus, transitively, every shared-library package they depend on. Non-library
# dependencies (postgresql-common, perl, debconf, tzdata, ...) are not needed to run the binaries, and
# libllvm is only for JIT, which the cluster turns off.
resolve_packages() {
    local -A seen=()
    local queue=("${MAIN_PACKAGES[@]}") next pkg
    for pkg in "${queue[@]}"; do seen[$pkg]=1; done
    while ((${#queue[@]})); do
        next=()
        while read -r pkg; do
            [[ "$pkg" =~ ^(lib|zlib1g) && ! "$pkg" =~ ^libllvm && ! "$pkg" =~ -perl$ ]] || continue
            [[ -z "${seen[$pkg]:-}" ]] || continue
            seen[$pkg]=1
            next+=("$pkg")
        done < <(dependencies_of "${queue[@]}" | sort -u)
        queue=("${next[@]}")
    done
    printf '%s\n' "${!seen[@]}" | sort
}

download_packages() {
    local missing=() pkg
    for pkg in "$@"; do
        compgen -G "$DEB_DIR/${pkg}_*.deb" >/dev/null || missing+=("$pkg")
    done
    if ((${#missing[@]} == 0)); then
        log "all $# packages are already cached in $DEB_DIR"
        return
    fi
    log "downloading ${#missing[@]} packages into $DEB_DIR: ${missing[*]}"
    (cd "$DEB_DIR" && apt-get "${APT_OPTS[@]}" download "${missing[@]}" >&2) \
        || die "apt-get download failed for: ${missing[*]}"
}

unpack_packages() {
    local pkg deb
    log "unpacking $# packages into $PREFIX"
    for pkg in "$@"; do
        for deb in "$DEB_DIR/${pkg}"_*.deb; do
            dpkg -x "$deb" "$PREFIX" || die "dpkg -x failed for $deb"
        done
    done
    [[ -x "$LOADER" ]] || die "the private loader $LOADER is missing after unpacking libc6"
}

# Runs a program unpacked from trixie with the private loader and libraries.
run_private() { "$LOADER" --library-path "$LIBDIR:$PREFIX/lib/x86_64-linux-gnu" "$@"; }

is_elf() { [[ "$(head -c 4 "$1" 2>/dev/null | od -An -c | tr -d ' ')" == '177ELF' ]]; }

patch_binaries() {
    local bin count=0
    log "patching interpreter and rpath of the executables in $BINDIR"
    for bin in "$BINDIR"/*; do
        [[ -f "$bin" && ! -L "$bin" ]] && is_elf "$bin" || continue
        run_private "$PREFIX/usr/bin/patchelf" --set-interpreter "$LOADER" --force-rpath \
            --set-rpath "$LIBDIR:$PREFIX/lib/x86_64-linux-gnu" "$bin" || die "patchelf failed on $bin"
        count=$((count + 1))
    done
    ((count > 0)) || die "no executables found in $BINDIR"
}

# Every executable and every extension library must resolve all its libraries inside the prefix.
check_libraries() {
    local file missing="" out
    for file in "$BINDIR"/* "$PKGLIBDIR"/*.so; do
        [[ -f "$file" && ! -L "$file" ]] && is_elf "$file" || continue
        case "$file" in */llvmjit*.so) continue ;; esac  # JIT stays off: libllvm is deliberately absent
        out="$(run_private --list "$file" 2>&1 || true)"
        if grep -q 'not found' <<<"$out"; then
            missing+="$(basename "$file"): $(grep 'not found' <<<"$out" | awk '{print $1}' | tr '\n' ' ')"$'\n'
        fi
    done
    [[ -z "$missing" ]] || die "libraries still missing after unpacking:"$'\n'"$missing"
    log "ldd check: every executable and extension library resolves its libraries"
}

verify() {
    local version
    version="$("$BINDIR/postgres" --version 2>&1)" || die "the installed postgres does not run: $version"
    [[ -f "$CONTROL" ]] || die "timescaledb.control is missing at $CONTROL"
    printf '%s\n' "$version"
}

write_marker() {
    local pg_version="$1" tsdb_version
    tsdb_version="$(sed -n "s/^default_version *= *'\(.*\)'/\1/p" "$CONTROL")"
    {
        printf 'installer=%s\n' "$INSTALLER_VERSION"
        printf 'postgres=%s\n' "$pg_version"
        printf 'timescaledb=%s\n' "$tsdb_version"
        printf 'bindir=%s\n' "$BINDIR"
        printf 'installed_at=%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    } >"$MARKER.tmp"
    mv "$MARKER.tmp" "$MARKER"
    log "installed $pg_version with TimescaleDB $tsdb_version (Apache-2 edition) in $PREFIX"
}

report_installed() { log "already installed in $PREFIX ($(grep '^postgres=' "$MARKER" | cut -d= -f2-))"; }

main() {
    if already_installed; then
        report_installed
        return 0
    fi
    # Two installs into one prefix at once (say, two test sessions) would unpack over each other: take turns.
    exec 9>"$PREFIX/.install.lock"
    if command -v flock >/dev/null; then
        flock 9
        if already_installed; then
            report_installed
            return 0
        fi
    fi
    check_host
    configure_apt
    update_lists
    local packages
    mapfile -t packages < <(resolve_packages)
    ((${#packages[@]} > ${#MAIN_PACKAGES[@]})) || die "could not resolve the dependencies from the Debian $SUITE lists"
    download_packages "${packages[@]}"
    unpack_packages "${packages[@]}"
    patch_binaries
    check_libraries
    write_marker "$(verify)"
    log "binaries: $BINDIR"
}

main
