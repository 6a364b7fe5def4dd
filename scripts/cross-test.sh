#!/usr/bin/env bash
# cross-test.sh — cross-build the library and run its test suite on ARM under
# qemu-user, and measure the release size of an example binary.
#
# Usage:
#   scripts/cross-test.sh [options] [TRIPLE...] [-- TEST-HARNESS-ARGS...]
#
#   TRIPLE            aarch64-unknown-linux-gnu and/or armv7-unknown-linux-gnueabihf
#                     (default: both)
#   --no-setup        don't install anything (rustup targets, Debian packages)
#   --setup-only      only install what is needed, then exit
#   --no-sizes        skip the release example size step
#   --sizes-only      only the size step (host x86_64 + the TRIPLEs)
#   --example NAME    example measured by the size step (default: quickstart)
#   --features LIST   cargo features for the build and tests (e.g. sqlite,cli);
#   --all-features    test targets whose required-features are not enabled are
#                     skipped (and listed), as plain `cargo test` does
#   --check TRIPLE    lint this triple instead of running its tests: clippy on
#                     every target (tests, examples, benches) with -D warnings,
#                     no binary built or run (repeatable; CI checks aarch64
#                     this way and runs the suite on armv7)
#   --lint32          also run clippy on the library for armv7 with the
#                     cast_possible_truncation/wrap lints (report only)
#   -- ARGS           passed to every test binary (e.g. a name filter)
#
# Environment:
#   CROSS_TARGET_DIR      cargo target dir (default: target/cross; keeps native
#                         builds' locks and artifacts separate)
#   CROSS_SKIP_TARGETS    extra test targets (tests/<name>.rs, tests/<name>/main.rs) to skip, space separated
#   CROSS_SKIP_TESTS      extra test names to skip (libtest --skip), space separated
#   CROSS_TEST_TIMEOUT    seconds allowed for one triple's test run (default 3600)
#   CARGO_BUILD_JOBS      as usual
#   WA_REDB_STRESS_SECS   length of tests/stress/ (default here 30, not 3:
#                         the test asserts a minimum op count, and qemu is slow)
#   Any CARGO_TARGET_<TRIPLE>_LINKER / _RUNNER, CC_<triple> already set is
#   respected. WA_REDB_TEST_RUNNER is always set to the triple's runner.
#
# Nothing is written to .cargo/config: linkers and runners are configured with
# environment variables for this process only, so normal builds are unaffected.
#
# Tests that re-exec the test binary (crash tests via tests/util/process.rs)
# can't exec an ARM binary directly (no binfmt_misc here): the script exports
# WA_REDB_TEST_RUNNER="qemu-<arch> -L /usr/<gnu-triple>", which the tests put
# in front of std::env::current_exe().
#
# Exit status: 0 all good, 1 a test failed / did not build, 2 usage or setup error.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# --------------------------------------------------------------------------
# Skip lists. Keep them short and say why; they are printed on every run.
# Test targets are the names of tests/*.rs files or tests/<dir>/main.rs dirs.
# (Tests using the SqliteStore dev-dependency — bundled C SQLite — build and
# pass under qemu with the cross C compilers, so none is skipped for that.)
declare -A SKIP_TARGETS=(
)
# libtest --skip filters (substring match on the test path), any test target.
declare -A SKIP_TESTS=(
)
# --------------------------------------------------------------------------

DEFAULT_TRIPLES=(aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf)
HOST="$(rustc -vV | sed -n 's/^host: //p')"
export CARGO_TARGET_DIR="${CROSS_TARGET_DIR:-target/cross}"
TIMEOUT="${CROSS_TEST_TIMEOUT:-3600}"
LOGDIR="$CARGO_TARGET_DIR/cross-logs"

do_setup=1 do_tests=1 do_sizes=1 setup_only=0 lint32=0
example=quickstart
triples=() checked=() harness_args=() feature_args=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --no-setup) do_setup=0 ;;
        --setup-only) setup_only=1 ;;
        --no-sizes) do_sizes=0 ;;
        --sizes-only) do_tests=0; do_sizes=1 ;;
        --example) [[ $# -ge 2 ]] || { echo "--example needs a name" >&2; exit 2; }; example="$2"; shift ;;
        --example=*) example="${1#--example=}" ;;
        --lint32) lint32=1 ;;
        --check) [[ $# -ge 2 ]] || { echo "--check needs a triple" >&2; exit 2; }
                 checked+=("$2"); shift ;;
        --features) [[ $# -ge 2 ]] || { echo "--features needs a list" >&2; exit 2; }
                    feature_args+=(--features "$2"); shift ;;
        --features=*) feature_args+=("$1") ;;
        --all-features) feature_args+=(--all-features) ;;
        -h|--help) sed -n '2,46p' "${BASH_SOURCE[0]}"; exit 0 ;;
        --) shift; harness_args=("$@"); break ;;
        -*) echo "cross-test: unknown option $1" >&2; exit 2 ;;
        *) triples+=("$1") ;;
    esac
    shift
done
[[ ${#triples[@]} -gt 0 || ${#checked[@]} -gt 0 ]] || triples=("${DEFAULT_TRIPLES[@]}")
for s in ${CROSS_SKIP_TARGETS:-}; do SKIP_TARGETS[$s]="requested by CROSS_SKIP_TARGETS"; done
for s in ${CROSS_SKIP_TESTS:-}; do SKIP_TESTS[$s]="requested by CROSS_SKIP_TESTS"; done

# Per-triple facts: GNU tool prefix, qemu binary, Debian packages.
triple_info() {
    case "$1" in
        aarch64-unknown-linux-gnu)
            GNU=aarch64-linux-gnu QEMU=qemu-aarch64
            DEBS=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross) ;;
        armv7-unknown-linux-gnueabihf)
            GNU=arm-linux-gnueabihf QEMU=qemu-arm
            DEBS=(gcc-arm-linux-gnueabihf libc6-dev-armhf-cross) ;;
        "$HOST")
            GNU="" QEMU="" DEBS=() ;;
        *) echo "cross-test: unsupported triple $1" >&2; exit 2 ;;
    esac
}
all_triples=(${triples[@]+"${triples[@]}"} ${checked[@]+"${checked[@]}"})
for t in "${all_triples[@]}"; do triple_info "$t"; done  # validate early

hr() { printf '\n== %s ==\n' "$*"; }
setenv_default() { # NAME VALUE: export unless the caller already set it
    if [[ -z "${!1:-}" ]]; then export "$1=$2"; fi
}

# --------------------------------------------------------------------------
setup() {
    hr "setup"
    local t installed missing=() debs=(qemu-user)
    if command -v rustup >/dev/null; then
        installed="$(rustup target list --installed)"
        for t in "${all_triples[@]}"; do
            [[ "$t" == "$HOST" ]] && continue
            if grep -qx "$t" <<<"$installed"; then
                echo "rust target $t: installed"
            else
                echo "rust target $t: installing"
                rustup target add "$t"
            fi
        done
    else
        for t in "${all_triples[@]}"; do
            [[ -d "$(rustc --print sysroot)/lib/rustlib/$t" ]] ||
                { echo "cross-test: no rustup and no std for $t" >&2; exit 2; }
        done
    fi
    for t in "${all_triples[@]}"; do triple_info "$t"; debs+=(${DEBS[@]+"${DEBS[@]}"}); done
    for d in "${debs[@]}"; do
        if dpkg-query -W -f='${Status}' "$d" 2>/dev/null | grep -q 'install ok installed'; then
            echo "deb $d: installed"
        else
            missing+=("$d")
        fi
    done
    if [[ ${#missing[@]} -gt 0 ]]; then
        local sudo=()
        [[ $EUID -eq 0 ]] || sudo=(sudo)
        echo "installing Debian packages: ${missing[*]}"
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            --no-install-recommends "${missing[@]}"
    fi
}

# Linker, C compiler (for crates that build C, e.g. the SqliteStore
# dev-dependency's bundled SQLite) and qemu runner for one triple.
configure() {
    local t="$1" up us
    triple_info "$t"
    up="$(tr 'a-z-' 'A-Z_' <<<"$t")" us="${t//-/_}"
    [[ -n "$GNU" ]] || { RUNNER="" STRIP=strip; return 0; }
    setenv_default "CARGO_TARGET_${up}_LINKER" "$GNU-gcc"
    setenv_default "CC_${us}" "$GNU-gcc"
    setenv_default "CXX_${us}" "$GNU-g++"
    setenv_default "AR_${us}" "$GNU-ar"
    setenv_default "CARGO_TARGET_${up}_RUNNER" "$QEMU -L /usr/$GNU"
    RUNNER="CARGO_TARGET_${up}_RUNNER"
    RUNNER="${!RUNNER}"
    STRIP="$GNU-strip"
}

# --------------------------------------------------------------------------
# Test targets of the package, from cargo metadata (so new tests/*.rs are
# picked up without editing this script).
list_test_targets() {
    # Prints "name<TAB>missing-features" (missing empty when runnable).
    cargo metadata --format-version 1 --no-deps | python3 -c '
import json, sys
m = json.load(sys.stdin)
root = m["resolve"]["root"] if m.get("resolve") else None
args = sys.argv[1:]
pkg = next(p for p in m["packages"] if root is None or p["id"] == root)
feats = pkg["features"]
if "--all-features" in args:
    on = set(feats)
else:
    on = {"default"} if "default" in feats and "--no-default-features" not in args else set()
    for i, a in enumerate(args):
        v = args[i + 1] if a == "--features" and i + 1 < len(args) else (
            a.split("=", 1)[1] if a.startswith("--features=") else None)
        if v:
            on |= {f for f in v.replace(",", " ").split() if f}
    stack = list(on)
    while stack:  # features enabling features
        for x in feats.get(stack.pop(), []):
            if x in feats and x not in on:
                on.add(x)
                stack.append(x)
for t in pkg["targets"]:
    if "test" in t["kind"]:
        missing = [f for f in t.get("required-features", []) if f not in on]
        print(t["name"] + "\t" + ",".join(missing))
' ${feature_args[@]+"${feature_args[@]}"}
}
has_example() {
    cargo metadata --format-version 1 --no-deps | python3 -c '
import json, sys
m = json.load(sys.stdin)
sys.exit(0 if any("example" in t["kind"] and t["name"] == sys.argv[1]
                  for p in m["packages"] for t in p["targets"]) else 1)' "$1"
}

declare -A RESULT_LINE=() SKIPPED_FEATURE_TARGETS=()
total_pass=0 total_fail=0 total_skip=0 overall=0

run_tests() {
    local t="$1" name rc start
    configure "$t"
    export WA_REDB_TEST_RUNNER="$RUNNER"   # child processes of the test binary
    # Emulation is 10-30x slower. tests/stress/ runs for WA_REDB_STRESS_SECS
    # (default 3) and then asserts > 1000 operations ran: under qemu 3 s gives
    # ~250, so give it longer unless the caller chose a value.
    setenv_default WA_REDB_STRESS_SECS 30
    hr "$t: tests (runner: $RUNNER)"
    echo "env: WA_REDB_TEST_RUNNER=\"$WA_REDB_TEST_RUNNER\" WA_REDB_STRESS_SECS=$WA_REDB_STRESS_SECS"
    mkdir -p "$LOGDIR"
    local args=(--target "$t" --no-fail-fast --lib ${feature_args[@]+"${feature_args[@]}"})
    local skipped_targets=() skip_args=() included=(lib) missing
    declare -A why=()
    while IFS=$'\t' read -r name missing; do
        if [[ -n "${SKIP_TARGETS[$name]+x}" ]]; then
            skipped_targets+=("$name") why[$name]="${SKIP_TARGETS[$name]}"
        elif [[ -n "$missing" ]]; then
            skipped_targets+=("$name")
            why[$name]="needs cargo feature(s) $missing (run with --features $missing)"
            SKIPPED_FEATURE_TARGETS[$name]="${why[$name]}"
        else
            args+=(--test "$name")
            included+=("$name")
        fi
    done < <(list_test_targets)
    for name in "${!SKIP_TESTS[@]}"; do skip_args+=(--skip "$name"); done

    echo "test targets (${#included[@]}): ${included[*]} (doctests are not run cross)"
    for name in ${skipped_targets[@]+"${skipped_targets[@]}"}; do
        echo "SKIPPED test target $name on $t: ${why[$name]}"
    done
    for name in "${!SKIP_TESTS[@]}"; do
        echo "SKIPPED tests matching '$name' on $t: ${SKIP_TESTS[$name]}"
    done

    # 1. Build, collecting our crate's compiler warnings for this triple.
    start=$SECONDS
    rc=0
    cargo test "${args[@]}" --no-run --message-format=json \
        >"$LOGDIR/$t-build.json" 2>"$LOGDIR/$t-build.err" || rc=$?
    python3 - "$LOGDIR/$t-build.json" "$t" <<'PY'
import json, sys
path, triple = sys.argv[1:]
seen, errors, ours = set(), [], []
for line in open(path):
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") != "compiler-message":
        continue
    msg = m["message"]
    rendered = msg.get("rendered") or msg["message"]
    if msg["level"] in ("error", "error: internal compiler error"):
        errors.append(rendered)
    elif m["package_id"].startswith("path+file://") and msg["level"] == "warning":
        span = next((s for s in msg["spans"] if s["is_primary"]), None)
        where = f'{span["file_name"]}:{span["line_start"]}' if span else "-"
        key = (where, msg["message"])
        if key not in seen:
            seen.add(key)
            ours.append(f"  {where}: {msg['message']}")
print(f"compiler warnings in this package for {triple}: {len(ours)}")
for w in ours:
    print(w)
for e in errors:
    print(e, end="")
PY
    if [[ $rc -ne 0 ]]; then
        tail -n 20 "$LOGDIR/$t-build.err"
        echo "$t: BUILD FAILED (log: $LOGDIR/$t-build.err)"
        RESULT_LINE[$t]="$t: BUILD FAILED, no test ran"
        total_fail=$((total_fail + 1))
        overall=1
        return 0
    fi
    echo "built in $((SECONDS - start))s"

    # 2. Run (nothing left to build). Output goes to the terminal and a log.
    start=$SECONDS
    rc=0
    timeout "$TIMEOUT" cargo test "${args[@]}" -- \
        ${skip_args[@]+"${skip_args[@]}"} ${harness_args[@]+"${harness_args[@]}"} \
        2>&1 | tee "$LOGDIR/$t-test.log" || rc=$?
    [[ $rc -eq 124 ]] && echo "$t: TIMED OUT after ${TIMEOUT}s"
    python3 - "$LOGDIR/$t-test.log" "$t" "$((SECONDS - start))" "$rc" "$LOGDIR/$t-counts" <<'PY'
import re, sys
path, triple, secs, rc, counts = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
running = re.compile(r"^\s+Running (.+?) \((.+)\)\s*$")
result = re.compile(r"test result: (\w+)\. (\d+) passed; (\d+) failed; (\d+) ignored; "
                    r"(\d+) measured; (\d+) filtered out")
rows, cur = [], None
for line in open(path, errors="replace"):
    m = running.match(line)
    if m:
        cur = [m.group(1), None]
        rows.append(cur)
        continue
    m = result.search(line)
    if m and cur is not None and cur[1] is None:
        cur[1] = tuple(int(x) for x in m.groups()[1:])
tp = tf = ti = tfo = bad = 0
print(f"\n{triple} results:")
print(f"  {'test binary':<34} {'passed':>7} {'failed':>7} {'ignored':>8} {'filtered':>9}")
for name, r in rows:
    if r is None:
        bad += 1
        print(f"  {name:<34}  no result line: crashed, killed, or not a libtest harness")
        continue
    p, f, i, _, fo = r
    tp, tf, ti, tfo = tp + p, tf + f, ti + i, tfo + fo
    print(f"  {name:<34} {p:>7} {f:>7} {i:>8} {fo:>9}")
fail = tf + bad + (1 if rc != 0 and tf == 0 and bad == 0 else 0)
line = (f"{triple}: {tp} passed, {fail} failed, {ti} ignored, {tfo} filtered out "
        f"({len(rows)} test binaries, {secs}s, exit {rc})")
print(line)
with open(counts, "w") as fh:
    fh.write(f"{tp} {fail} {ti + tfo}\n{line}\n")
PY
    local p f s
    read -r p f s <"$LOGDIR/$t-counts"
    RESULT_LINE[$t]="$(sed -n 2p "$LOGDIR/$t-counts")"
    total_pass=$((total_pass + p)) total_fail=$((total_fail + f)) total_skip=$((total_skip + s))
    [[ $rc -eq 0 && $f -eq 0 ]] || overall=1
}

# --------------------------------------------------------------------------
human() { python3 -c 'import sys; n=int(sys.argv[1]); print(f"{n/1048576:.2f} MiB" if n >= 1048576 else f"{n/1024:.1f} KiB")' "$1"; }

sizes() {
    hr "release size of example '$example'"
    if ! has_example "$example"; then
        echo "example '$example' not found (examples/$example.rs missing?): skipping the size step"
        return 0
    fi
    local t bin out rows=() smoke
    for t in "$HOST" ${triples[@]+"${triples[@]}"}; do
        configure "$t"
        echo "building $example for $t (release)..."
        if ! cargo build --release --example "$example" --target "$t" 2>"$LOGDIR/$t-size-build.err"; then
            tail -n 20 "$LOGDIR/$t-size-build.err"
            echo "$t: release build of example $example FAILED"
            overall=1
            continue
        fi
        bin="$CARGO_TARGET_DIR/$t/release/examples/$example"
        out="$bin.stripped"
        "$STRIP" -o "$out" "$bin"
        # Smoke-run the stripped binary (under qemu for ARM) in a scratch dir.
        local dir; dir="$(mktemp -d)"
        if ${RUNNER:+$RUNNER} "$out" "$dir/store.redb" >"$dir/out.txt" 2>&1; then
            smoke=ok
        else
            smoke="FAILED (exit $?): $(tail -n 3 "$dir/out.txt" | tr '\n' ' ')"
            overall=1
        fi
        rm -rf "$dir"
        rows+=("$(printf '%-32s %12s %12s %12s %12s  run: %s' "$t" \
            "$(stat -c %s "$bin")" "$(human "$(stat -c %s "$bin")")" \
            "$(stat -c %s "$out")" "$(human "$(stat -c %s "$out")")" "$smoke")")
    done
    printf '%-32s %12s %12s %12s %12s\n' triple "unstripped" "" stripped ""
    printf '%s\n' "${rows[@]}"
    echo "(profile: release as in Cargo.toml; stripped with <triple>-strip; binaries under $CARGO_TARGET_DIR/<triple>/release/examples/)"
}

# --------------------------------------------------------------------------
# Lint a triple without building or running anything: every target of the
# package checked for it (cfg'd code, type sizes), warnings as errors. Build
# scripts still run, so the SQLite dev-dependency's C is compiled for it.
check_triple() {
    local t="$1" start=$SECONDS rc=0
    configure "$t"
    hr "$t: clippy on every target, -D warnings (no test runs)"
    cargo clippy --target "$t" --all-targets ${feature_args[@]+"${feature_args[@]}"} -- -D warnings || rc=$?
    if [[ $rc -eq 0 ]]; then
        RESULT_LINE[$t]="$t: checked (clippy, every target, no warnings) in $((SECONDS - start))s; no test ran"
    else
        RESULT_LINE[$t]="$t: CHECK FAILED (clippy exit $rc)"
        total_fail=$((total_fail + 1))
        overall=1
    fi
}

# --------------------------------------------------------------------------
lint32() {
    local t=armv7-unknown-linux-gnueabihf
    configure "$t"
    hr "$t: clippy 32-bit cast lints on the library (report only)"
    cargo clippy --target "$t" --lib ${feature_args[@]+"${feature_args[@]}"} --message-format=json -- \
        -W clippy::cast_possible_truncation -W clippy::cast_possible_wrap \
        >"$LOGDIR/$t-clippy.json" 2>"$LOGDIR/$t-clippy.err" || true
    python3 - "$LOGDIR/$t-clippy.json" <<'PY'
import json, sys, collections
seen, by = set(), collections.Counter()
for line in open(sys.argv[1]):
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") != "compiler-message" or not m["package_id"].startswith("path+file://"):
        continue
    msg = m["message"]
    code = (msg.get("code") or {}).get("code", "")
    if "cast_possible" not in code:
        continue
    span = next((s for s in msg["spans"] if s["is_primary"]), None)
    if not span:
        continue
    key = (span["file_name"], span["line_start"], msg["message"])
    if key in seen:
        continue
    seen.add(key)
    by[code] += 1
    text = span["text"][0]["text"].strip() if span["text"] else ""
    # Casts clippy flags only "on targets with 64-bit wide pointers" cannot
    # go wrong on a 32-bit target; list them separately.
    tag = ("64-bit-only" if "64-bit wide pointers" in msg["message"] else
           "32-bit" if "32-bit wide pointers" in msg["message"] else "any-width")
    print(f'  [{tag}] {span["file_name"]}:{span["line_start"]}: {msg["message"]}   `{text[:90]}`')
print("cast lints on the library:", dict(by) or "none")
PY
    echo "64-bit atomics in src/ (fine on armv7/aarch64, which have them; not on e.g. mips/ppc32/armv5te):"
    grep -rnE 'Atomic(U|I)64' src/ || echo "  none"
}

# --------------------------------------------------------------------------
mkdir -p "$LOGDIR"
[[ $do_setup -eq 1 || $setup_only -eq 1 ]] && setup
[[ $setup_only -eq 1 ]] && exit 0

command -v python3 >/dev/null || { echo "cross-test: python3 needed" >&2; exit 2; }
if [[ $do_tests -eq 1 ]]; then
    for t in ${triples[@]+"${triples[@]}"}; do
        [[ "$t" == "$HOST" ]] && { echo "skipping tests for host triple $t (use cargo test)"; continue; }
        run_tests "$t"
    done
fi
for t in ${checked[@]+"${checked[@]}"}; do check_triple "$t"; done
[[ $lint32 -eq 1 ]] && lint32
[[ $do_sizes -eq 1 ]] && sizes

if [[ $do_tests -eq 1 ]]; then
    hr "summary"
    for t in "${all_triples[@]}"; do
        [[ -n "${RESULT_LINE[$t]+x}" ]] && echo "${RESULT_LINE[$t]}"
    done
    for name in "${!SKIP_TARGETS[@]}"; do echo "skipped test target $name: ${SKIP_TARGETS[$name]}"; done
    for name in "${!SKIPPED_FEATURE_TARGETS[@]}"; do echo "skipped test target $name: ${SKIPPED_FEATURE_TARGETS[$name]}"; done
    for name in "${!SKIP_TESTS[@]}"; do echo "skipped tests '$name': ${SKIP_TESTS[$name]}"; done
    # Plain closing line (counted by CI): skipped = ignored + filtered out.
    echo "cross-test: $total_pass passed, $total_fail failed, $total_skip skipped"
fi
exit "$overall"
