#!/usr/bin/env bash
# check-no-c.sh — prove that the library's DEFAULT build compiles no C/C++.
#
# Walks the dependency graph that `cargo build` (lib, default features) really
# compiles — normal dependencies plus the build-dependencies of every crate in
# it (build scripts and proc-macros are compiled too), dev-dependencies
# excluded, platform-specific edges filtered for the target — and fails on any
# crate that:
#   * has a `links = "..."` key (it links a native library), unless allowlisted;
#   * has a C/C++ build tool among its RESOLVED build-dependencies (`cc`,
#     `cmake`, `pkg-config`, ... directly, or reached through one of its
#     build-dependencies, e.g. `cxx-build -> cc`);
#   * is named `*-sys` and is not on the pure-Rust allowlist.
#
# The graph is the `resolve` section of `cargo metadata --filter-platform`.
# cargo metadata unifies features across ALL dependency kinds and workspace
# members, so features that only dev-dependencies or another member turn on
# can add optional crates to that graph (here e.g. tokio-macros, and the
# `sqlite` feature that compat/ enables); the walk is therefore a (safe) over-approximation. An offender
# is confirmed against `cargo tree -e normal,build`, which resolves features as
# a real non-dev build does; an offender that cargo tree does not show is
# reported as a warning ("only via feature unification"), not an error.
#
# Usage:
#   scripts/check-no-c.sh [--target TRIPLE]... [--verbose] [cargo args...]
#     --target TRIPLE   check the graph for TRIPLE (repeatable); default: host
#     --verbose         also list every crate that has a build script
#     cargo args        passed to cargo metadata and cargo tree, e.g.
#                       --features sqlite, --all-features, --locked, --offline
#
# Examples:
#   scripts/check-no-c.sh                               # must pass
#   scripts/check-no-c.sh --target aarch64-unknown-linux-gnu \
#                         --target armv7-unknown-linux-gnueabihf
#   scripts/check-no-c.sh --features sqlite             # must FAIL (libsqlite3-sys)
#
# Exit status: 0 clean, 1 C/C++ found, 2 usage or tool error.
# Needs: cargo, python3 (>= 3.8). No jq.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

targets=()
verbose=0
cargo_args=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --target) [[ $# -ge 2 ]] || { echo "check-no-c: --target needs a value" >&2; exit 2; }
                  targets+=("$2"); shift 2 ;;
        --target=*) targets+=("${1#--target=}"); shift ;;
        --verbose|-v) verbose=1; shift ;;
        -h|--help) sed -n '2,40p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) cargo_args+=("$1"); shift ;;
    esac
done
if [[ ${#targets[@]} -eq 0 ]]; then
    targets=("$(rustc -vV | sed -n 's/^host: //p')")
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

status=0
for target in "${targets[@]}"; do
    if ! cargo metadata --format-version 1 --filter-platform "$target" \
            ${cargo_args[@]+"${cargo_args[@]}"} >"$tmp/meta.json" 2>"$tmp/meta.err"; then
        cat "$tmp/meta.err" >&2
        echo "check-no-c: cargo metadata failed" >&2
        exit 2
    fi
    # Exact set a non-dev build compiles (features resolved without dev units).
    if ! cargo tree -e normal,build --target "$target" --prefix none --charset ascii \
            --format '{p}' ${cargo_args[@]+"${cargo_args[@]}"} >"$tmp/tree.txt" 2>"$tmp/tree.err"; then
        cat "$tmp/tree.err" >&2
        echo "check-no-c: cargo tree failed" >&2
        exit 2
    fi
    rc=0
    python3 - "$tmp/meta.json" "$tmp/tree.txt" "$target" "$verbose" "${cargo_args[*]+${cargo_args[*]}}" <<'PY' || rc=$?
import json, re, sys

meta_path, tree_path, target, verbose, extra = sys.argv[1:6]
verbose = verbose == "1"

# Crates whose presence among a crate's build-dependencies means its build
# script compiles (or links against, or generates bindings for) C/C++ code.
# `gcc` is the pre-2018 name of the `cc` crate.
C_BUILD_TOOLS = {
    "cc", "gcc", "cmake", "pkg-config", "vcpkg", "cxx-build", "bindgen",
    "autotools", "system-deps", "metadeps", "nasm-rs", "cc-version",
}

# `links` keys of crates that are pure Rust: they use `links` only to pass
# metadata between build scripts / to stop two semver-incompatible copies from
# both being linked, and compile no native code. Keep this list short and
# justify each entry.
LINKS_ALLOWLIST = {
    # prettyplease (syn pretty-printer, pulled in by buffa-codegen at build
    # time): `links` is used only to export its version to dependents' build
    # scripts; no build-dependencies, no native code.
    "prettyplease": "links key only exports metadata to build scripts; no native code",
}

# `-sys` crates that are pure Rust (raw bindings written in Rust, no C built
# and no native library linked).
SYS_ALLOWLIST = {
    # rustix's raw Linux syscall bindings, generated ahead of time; pure Rust.
    "linux-raw-sys": "pure-Rust Linux syscall/ABI bindings",
    # Windows API import libraries (shipped as Rust); not on Linux targets
    # anyway since the graph is filtered by platform.
    "windows-sys": "pure-Rust Windows API bindings",
}

m = json.load(open(meta_path))
pkgs = {p["id"]: p for p in m["packages"]}
nodes = {n["id"]: n for n in m["resolve"]["nodes"]}
root = m["resolve"]["root"]
if root is None:
    print("check-no-c: no root package (run from the crate directory)", file=sys.stderr)
    sys.exit(2)

def edges(pid, kinds):
    for d in nodes[pid]["deps"]:
        if any(k["kind"] in kinds for k in d["dep_kinds"]):
            yield d["pkg"]

def label(pid):
    p = pkgs[pid]
    return f'{p["name"]} {p["version"]}'

# Walk: normal + build edges, from the library. Keep a parent pointer for paths.
parent = {root: None}
stack = [root]
while stack:
    pid = stack.pop()
    for dep in edges(pid, (None, "build")):
        if dep not in parent:
            parent[dep] = pid
            stack.append(dep)
checked = [pid for pid in parent if pid != root]

def path_to(pid):
    chain = []
    while pid is not None:
        chain.append(pkgs[pid]["name"])
        pid = parent[pid]
    return " -> ".join(reversed(chain))

def closure_normal(pid):
    """pid plus everything it depends on through normal edges."""
    seen, st = {pid}, [pid]
    while st:
        for d in edges(st.pop(), (None,)):
            if d not in seen:
                seen.add(d)
                st.append(d)
    return seen

tree = set()
for line in open(tree_path):
    mm = re.match(r"^(\S+) v(\S+)", line.strip())
    if mm:
        tree.add(f"{mm.group(1)} {mm.group(2)}")

offenders, unified_only, build_scripts = [], [], []
# The package itself is judged too (a build.rs of ours must not build C either).
for pid in [root] + sorted(checked, key=label):
    p = pkgs[pid]
    name = p["name"]
    reasons = []
    if p.get("links") and name not in LINKS_ALLOWLIST:
        reasons.append(f'links={p["links"]}')
    for bdep in sorted(set(edges(pid, ("build",))), key=label):
        bname = pkgs[bdep]["name"]
        if bname in C_BUILD_TOOLS:
            reasons.append(f"build-dep {bname}")
            continue
        via = sorted({pkgs[x]["name"] for x in closure_normal(bdep)} & C_BUILD_TOOLS)
        if via:
            reasons.append(f"build-dep {bname} -> {', '.join(via)}")
    if name.endswith("-sys") and name not in SYS_ALLOWLIST:
        if not reasons:
            reasons.append("-sys crate not on the pure-Rust allowlist")
    if any("custom-build" in t["kind"] for t in p["targets"]):
        build_scripts.append(label(pid))
    if reasons:
        entry = (label(pid), ", ".join(reasons), path_to(pid))
        (offenders if label(pid) in tree else unified_only).append(entry)

cfg = f"target {target}" + (f", cargo args: {extra}" if extra else ", default features")
print(f"check-no-c: {cfg}")
print(f"check-no-c: checked {len(checked)} dependencies + the package itself "
      f"(normal + build deps, no dev-deps); cargo tree -e normal,build lists {len(tree) - 1}")
print(f"check-no-c: {len(build_scripts)} crates have a build script; none of them may build C")
if verbose:
    for b in build_scripts:
        print(f"  build script: {b}")
for name, why, path in unified_only:
    print(f"check-no-c: warning: {name}: {why} — only via feature unification (dev-dependencies, or the workspace member compat/ that enables `sqlite`), "
          f"not in a non-dev build (path in metadata graph: {path})")
if offenders:
    for name, why, path in offenders:
        print(f"check-no-c: FAIL {name}: {why}")
        print(f"            path: {path}")
    print(f"check-no-c: FAILED: {len(offenders)} crate(s) compile or link C/C++ for {target}")
    sys.exit(1)
print(f"check-no-c: OK: no crate compiles or links C/C++ for {target}")
PY
    if [[ $rc -ne 0 ]]; then
        [[ $rc -eq 1 ]] && status=1 || exit "$rc"
    fi
done
exit "$status"
