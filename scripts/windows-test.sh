#!/usr/bin/env bash
# windows-test.sh — build the crate and wa-redb for Windows
# (x86_64-pc-windows-gnu, linked with mingw-w64) and run the test suite
# under wine.
#
# Usage: scripts/windows-test.sh [--no-setup] [-- TEST-HARNESS-ARGS...]
#   --no-setup   don't install anything (rust target, Debian packages)
#
# Environment: WINDOWS_TARGET_DIR (default target/windows), the cargo target
# directory; the wine prefix lives inside it.
#
# Two test targets are Unix-only and compile to nothing here: `looking`
# (commands run as another user, file modes) and `cli_keys` (key files
# judged by their mode bits).
#
# Debian 12's wine (8.0) lacks bcryptprimitives.dll, whose ProcessPrng
# Rust's standard library calls for random bytes: a stand-in built from
# scripts/windows/bcryptprimitives.c goes into the prefix's system32. This
# compiles C for the test run only; the crate itself builds none.
#
# Exit status: 0 all good, 1 a test failed or did not build, 2 setup error.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

T=x86_64-pc-windows-gnu
FEATURES=fault-injection,cli,metrics,tracing
setup=1
args=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --no-setup) setup=0 ;;
        --) shift; args=("$@"); break ;;
        *) echo "windows-test: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done

if [[ $setup -eq 1 ]]; then
    rustup target list --installed | grep -qx "$T" || rustup target add "$T"
    missing=()
    for d in gcc-mingw-w64-x86-64-posix wine64; do
        dpkg-query -W -f='${Status}' "$d" 2>/dev/null | grep -q 'install ok installed' ||
            missing+=("$d")
    done
    if [[ ${#missing[@]} -gt 0 ]]; then
        sudo=()
        [[ $EUID -eq 0 ]] || sudo=(sudo)
        echo "installing Debian packages: ${missing[*]}"
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            --no-install-recommends "${missing[@]}"
    fi
fi

WINE="$(command -v wine64 || true)"
[[ -n "$WINE" ]] || WINE=/usr/lib/wine/wine64
[[ -x "$WINE" ]] || { echo "windows-test: no wine64" >&2; exit 2; }
command -v x86_64-w64-mingw32-gcc >/dev/null ||
    { echo "windows-test: no x86_64-w64-mingw32-gcc (gcc-mingw-w64-x86-64)" >&2; exit 2; }

export CARGO_TARGET_DIR="${WINDOWS_TARGET_DIR:-target/windows}"
export WINEPREFIX="$PWD/$CARGO_TARGET_DIR/wine"
export WINEDEBUG=-all
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER="$WINE"
# Children of a test are Windows processes of their own: no runner.
unset WA_REDB_TEST_RUNNER

# With the features a user turns on, not the test build's (whose
# dev-dependencies unify other features into the dependencies). Checked, not
# built: the test build below compiles and links all of them again anyway.
echo "==> the library, wa-redb and the examples for $T (checked)"
cargo check --target "$T" --features cli,metrics,tracing --lib --bins --examples

echo "==> the wine prefix"
mkdir -p "$WINEPREFIX"
"$WINE" wineboot --init >/dev/null 2>&1 || true
"$(dirname "$WINE")/wineserver" -w 2>/dev/null || wineserver -w 2>/dev/null || true
system32="$WINEPREFIX/drive_c/windows/system32"
[[ -d "$system32" ]] || { echo "windows-test: wine prefix not created" >&2; exit 2; }
x86_64-w64-mingw32-gcc -shared -O2 -o "$system32/bcryptprimitives.dll" \
    scripts/windows/bcryptprimitives.c -ladvapi32

# One wineserver for the whole run: by default it exits a few seconds after
# its last client, and a test binary that starts just then is refused ("wine
# client error:0: recvmsg: Connection reset by peer") before any test runs.
WINESERVER="$(dirname "$WINE")/wineserver"
[[ -x "$WINESERVER" ]] || WINESERVER=wineserver
"$WINESERVER" -p
trap '"$WINESERVER" -k 2>/dev/null || true' EXIT

echo "==> the test suite under wine"
cargo test --target "$T" --features "$FEATURES" -- ${args[@]+"${args[@]}"}
