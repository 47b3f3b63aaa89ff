# shellcheck shell=bash
# Shared by cross/build, cross/check and cross/run (sourced, not run): what
# each target needs to be built with Debian's rustc-web and run under
# qemu-user. Everything here is derived from the target triple; nothing
# depends on what the workspace contains.

CROSS_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# The compiler: Debian's rustc-web, whose std for each target comes from
# libstd-rust-web-dev:<arch> (cross/install-toolchain). WREN_CROSS_RUSTC
# points elsewhere (e.g. `rustup which rustc` with targets added) if wanted.
CROSS_RUSTC=${WREN_CROSS_RUSTC:-/usr/bin/rustc}

# The targets this recipe knows, in build order.
CROSS_TARGETS=(x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf)
CROSS_FOREIGN_TARGETS=(aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf)

# Sets, for one triple: deb_arch (Debian architecture), gnu (the GNU triple
# that prefixes its gcc, ar and strip), qemu (the qemu-user binary, empty
# when the host runs it natively) and loader (the dynamic loader the
# binaries name, which qemu finds under `-L /`).
target_facts() {
    case "$1" in
    x86_64-unknown-linux-gnu)
        deb_arch=amd64 gnu=x86_64-linux-gnu qemu="" loader=/lib64/ld-linux-x86-64.so.2
        ;;
    aarch64-unknown-linux-gnu)
        deb_arch=arm64 gnu=aarch64-linux-gnu qemu=qemu-aarch64-static loader=/lib/ld-linux-aarch64.so.1
        ;;
    armv7-unknown-linux-gnueabihf)
        deb_arch=armhf gnu=arm-linux-gnueabihf qemu=qemu-arm-static loader=/lib/ld-linux-armhf.so.3
        ;;
    *)
        echo "cross: unknown target $1 (known: ${CROSS_TARGETS[*]})" >&2
        return 1
        ;;
    esac
}

# The command prefix that runs a binary of the target on this host: nothing
# for the host's own target, else qemu-user with the root as its library
# prefix. `-L /` makes qemu load the multiarch loader (/lib/ld-linux-*.so.*
# from libc6:<arch>) and that loader finds the libc of the same build in
# /lib/<gnu>. Not `-L /usr/<gnu>`: there the loader comes from
# libc6-<arch>-cross, the libc it then finds is still the multiarch one (a
# different glibc build), and threaded programs hang.
target_runner() {
    target_facts "$1" || return 1
    if [ -n "$qemu" ]; then echo "$qemu -L /"; fi
}

# Exports what cargo and the cc crate need to build for the triple with the
# given rustc: RUSTC, and for foreign targets the linker, C compiler,
# archiver and a runner (so `cargo test --target` runs under qemu).
export_target_env() {
    local triple=$1 rustc=$2 upper lower
    target_facts "$triple" || return 1
    export RUSTC="$rustc"
    [ -n "$qemu" ] || return 0
    upper=$(echo "$triple" | tr 'a-z-' 'A-Z_')
    lower=${triple//-/_}
    export "CARGO_TARGET_${upper}_LINKER=$gnu-gcc"
    export "CARGO_TARGET_${upper}_RUNNER=$(target_runner "$triple")"
    export "CC_${lower}=$gnu-gcc"
    export "AR_${lower}=$gnu-ar"
}

# Why this rustc cannot compile for the triple (one line), or nothing: it
# must exist and have a std it accepts (a std of another rustc version is
# what a mirror serving mismatched packages leaves behind).
rustc_blocker() {
    local rustc=$1 triple=$2 tmp
    if [ ! -x "$rustc" ]; then
        echo "no $rustc (run cross/install-toolchain as root)"
        return 0
    fi
    tmp=$(mktemp -d)
    if ! echo 'fn main() {}' |
        "$rustc" --target "$triple" --edition 2021 --emit=metadata -o "$tmp/probe.rmeta" - 2>"$tmp/err"; then
        echo "$rustc ($("$rustc" --version | awk '{print $2}')) has no usable std for $triple: $(grep -m1 -E '^error' "$tmp/err" || head -n1 "$tmp/err")"
    fi
    rm -rf "$tmp"
}

# The rustc to build the triple with: Debian's rustc-web when its std for
# the triple is installed. Otherwise, unless WREN_CROSS_RUSTC chose one,
# rustup's rustc if it already has the target (nothing is downloaded):
# a mirror mid-sync can hold back one architecture's std for hours. Prints
# nothing when neither can.
pick_rustc() {
    local triple=$1 alt
    if [ -z "$(rustc_blocker "$CROSS_RUSTC" "$triple")" ]; then
        echo "$CROSS_RUSTC"
        return 0
    fi
    [ -z "${WREN_CROSS_RUSTC:-}" ] || return 0
    alt=$(cd "$CROSS_REPO" && rustup which rustc 2>/dev/null) || return 0
    if [ -n "$alt" ] && [ -z "$(rustc_blocker "$alt" "$triple")" ]; then echo "$alt"; fi
}

# Why the triple cannot be built here (one line), or nothing.
build_blocker() {
    local triple=$1
    target_facts "$triple" || return 0
    if [ -n "$qemu" ] && ! command -v "$gnu-gcc" >/dev/null; then
        echo "no $gnu-gcc (run cross/install-toolchain as root)"
        return 0
    fi
    if [ -z "$(pick_rustc "$triple")" ]; then
        echo "$(rustc_blocker "$CROSS_RUSTC" "$triple") (run cross/install-toolchain as root)"
    fi
}

# Says so on stderr when the triple is built by another rustc than
# Debian's rustc-web.
note_fallback() { # triple rustc
    if [ "$2" != "$CROSS_RUSTC" ]; then
        echo "cross: NOTE: $1 is built with $2 ($("$2" --version | awk '{print $2}')): $(rustc_blocker "$CROSS_RUSTC" "$1")" >&2
    fi
}

# Why binaries of the triple cannot be run here, or nothing.
run_blocker() {
    target_facts "$1" || return 0
    [ -n "$qemu" ] || return 0
    command -v "$qemu" >/dev/null || { echo "no $qemu (qemu-user-static)"; return 0; }
    [ -e "$loader" ] || echo "no $loader (libc6:$deb_arch)"
}

# The name of the workspace package that has the `wren` binary: a manifest
# with a [[bin]] named wren, or a package named wren.
wren_package() {
    local manifest
    for manifest in "$CROSS_REPO"/*/Cargo.toml; do
        if awk '/^\[\[bin\]\]/ {b=1; next} /^\[/ {b=0} b && /^name *= *"wren"/ {f=1} END {exit !f}' "$manifest" ||
            awk '/^\[package\]/ {p=1; next} /^\[/ {p=0} p && /^name *= *"wren"/ {f=1} END {exit !f}' "$manifest"; then
            awk '/^\[package\]/ {p=1; next} /^\[/ {p=0} p && /^name *=/ {gsub(/.*= *"|".*/, ""); print; exit}' "$manifest"
            return 0
        fi
    done
    echo "cross: no workspace package builds a binary named wren" >&2
    return 1
}

# The directory cargo puts a profile's outputs in.
profile_dir() {
    case "$1" in
    dev | test) echo debug ;;
    bench) echo release ;;
    *) echo "$1" ;;
    esac
}

target_dir() {
    echo "${CARGO_TARGET_DIR:-$CROSS_REPO/target}"
}

# Bytes as MiB with two decimals.
mib() {
    awk -v b="$1" 'BEGIN {printf "%.2f MiB", b / 1048576}'
}

# Seconds since an earlier `date +%s.%N`, to one decimal.
elapsed_since() {
    awk -v s="$1" -v e="$(date +%s.%N)" 'BEGIN {printf "%.1f", e - s}'
}

# Sets the variable named $1 to the CPU seconds (user + system) used so far
# by this shell's finished children, from the `times` builtin (which must
# run in this shell, not in a command substitution).
children_cpu() {
    local f
    f=$(mktemp)
    times >"$f"
    printf -v "$1" '%s' "$(awk 'NR == 2 {
        split($1, u, /[ms]/); split($2, s, /[ms]/)
        printf "%.1f", u[1] * 60 + u[2] + s[1] * 60 + s[2]
    }' "$f")"
    rm -f "$f"
}

# Registers the triple's qemu-user with binfmt_misc, so that the kernel runs
# the target's executables through qemu without a `qemu-* -L /` prefix: a
# `wren` agent under qemu-user re-executes its own binary as each task's
# shim, which the kernel refuses (ENOEXEC) otherwise. Mounts binfmt_misc
# if needed and enables the entry binfmt-support's `update-binfmts` knows
# from qemu-user-static (its interpreter is qemu-<arch>-static, which finds
# the multiarch loader and libc under / like `-L /`). Idempotent; needs root
# unless already done. Prints why it could not, or nothing. Undo:
# `update-binfmts --disable qemu-<arch>`.
binfmt_enable() {
    local triple=$1 name entry
    target_facts "$triple" || return 0
    [ -n "$qemu" ] || return 0
    name=${qemu%-static}
    entry=/proc/sys/fs/binfmt_misc/$name
    [ "$(head -n1 "$entry" 2>/dev/null)" = enabled ] && return 0
    if [ "$(id -u)" != 0 ]; then
        echo "$name is not registered with binfmt_misc, and registering it needs root"
        return 0
    fi
    if [ ! -e /proc/sys/fs/binfmt_misc/register ] &&
        ! mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null; then
        echo "cannot mount binfmt_misc on /proc/sys/fs/binfmt_misc"
        return 0
    fi
    if ! command -v update-binfmts >/dev/null; then
        echo "no update-binfmts (binfmt-support; run cross/install-toolchain as root)"
        return 0
    fi
    update-binfmts --enable "$name" >/dev/null 2>&1 || true
    [ "$(head -n1 "$entry" 2>/dev/null)" = enabled ] ||
        echo "update-binfmts --enable $name did not register $entry"
}
