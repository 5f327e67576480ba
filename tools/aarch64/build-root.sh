#!/usr/bin/env bash
# Build an AArch64 user-space root for running secretjit under qemu-user.
#
#   bash tools/aarch64/build-root.sh        (ROOT defaults to <repo>/.aarch64-root)
#
# The root holds Debian's arm64 CPython 3.11 and the C libraries it loads,
# extracted with `dpkg -x` (nothing is installed on the host for arm64), plus
# the aarch64 wheels of numba, llvmlite, numpy and the pure-Python test
# dependencies unpacked into $ROOT/site.  Host packages it needs (qemu-user)
# are installed with apt-get.  Idempotent: downloads are cached in
# $ROOT/.cache, and a stamp that hashes this script makes a second run exit
# at once; any change to this script rebuilds the root.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
ROOT="${ROOT:-$REPO/.aarch64-root}"

# Debian arm64 packages: CPython 3.11 and the shared libraries its
# interpreter and extension modules load (checked below: DT_NEEDED).
DEBS=(
    python3.11-minimal libpython3.11-minimal libpython3.11-stdlib
    libc6 libgcc-s1 libstdc++6 libexpat1 zlib1g libssl3 libffi8 libbz2-1.0
    liblzma5 libzstd1 libsqlite3-0 libuuid1 libcrypt1 libtinfo6
    libncursesw6 libreadline8 libdb5.3 libnsl2 libtirpc3
    libgssapi-krb5-2 libkrb5-3 libk5crypto3 libkrb5support0 libcom-err2
    libkeyutils1 libgomp1
)
# aarch64 wheels (numba 0.68 supports numpy 1.22 to 2.5; the host uses 2.4);
# capstone and pyelftools for the machine-code audit of JIT kernels.
WHEELS=(numba==0.68.1 llvmlite==0.50.0 numpy==2.4.6 capstone==5.0.9)
PURE=(pytest==9.0.3 pluggy==1.6.0 iniconfig==2.3.0 packaging==26.2
      pygments==2.20.0 pyelftools==0.33)

STAMP="$ROOT/.built"
want_stamp="$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-16)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want_stamp" ] \
        && command -v qemu-aarch64 >/dev/null \
        && command -v aarch64-linux-gnu-gcc >/dev/null \
        && [ -x "$ROOT/usr/bin/python3.11" ]; then
    exit 0
fi

log() { echo "[build-root] $*" >&2; }
start=$(date +%s)
export DEBIAN_FRONTEND=noninteractive

# -- host tools ---------------------------------------------------------------
apt_updated=0
apt_update() {
    if [ "$apt_updated" = 0 ]; then
        log "apt-get update"
        apt-get update -qq
        apt_updated=1
    fi
}
# arm64 first, so that one apt-get update serves both architectures.
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    log "dpkg --add-architecture arm64"
    dpkg --add-architecture arm64
    apt_updated=0
fi
if ! command -v qemu-aarch64 >/dev/null; then
    apt_update
    log "installing qemu-user"
    apt-get install -y -qq qemu-user >/dev/null
fi
# secretjit's C runtime is cross-compiled for the root (run.sh builds it).
if ! command -v aarch64-linux-gnu-gcc >/dev/null; then
    apt_update
    log "installing gcc-aarch64-linux-gnu"
    apt-get install -y -qq gcc-aarch64-linux-gnu >/dev/null
fi
if ! command -v python3 >/dev/null; then
    apt_update
    apt-get install -y -qq python3 python3-pip >/dev/null
fi
HOSTPY="$(command -v python3)"
if ! "$HOSTPY" -m pip --version >/dev/null 2>&1; then
    apt_update
    apt-get install -y -qq python3-pip >/dev/null
fi

# -- Debian arm64 packages ----------------------------------------------------
if [ -z "$(apt-cache policy python3.11-minimal:arm64 2>/dev/null \
        | sed -n 's/^ *Candidate: //p' | grep -v '(none)')" ]; then
    apt_update
fi

CACHE="$ROOT/.cache"
mkdir -p "$CACHE/debs" "$CACHE/wheels"
missing=()
for p in "${DEBS[@]}"; do
    if ! ls "$CACHE/debs/${p}_"*_arm64.deb >/dev/null 2>&1; then
        missing+=("$p:arm64")
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    log "apt-get download ${#missing[@]} arm64 packages"
    # a stale package list names versions the mirror no longer has: refresh
    # it once and try again
    (cd "$CACHE/debs" && apt-get download -qq -o APT::Sandbox::User=root \
        "${missing[@]}") || { apt_updated=0; apt_update; (cd "$CACHE/debs" \
        && apt-get download -qq -o APT::Sandbox::User=root "${missing[@]}"); }
fi

# Start the file tree afresh (the caches survive), so a rebuild never keeps
# files of packages that were dropped.
rm -rf "$ROOT/usr" "$ROOT/lib" "$ROOT/etc" "$ROOT/var" "$ROOT/site" \
       "$ROOT/bin" "$ROOT/project" "$ROOT/pycache"
for deb in "$CACHE"/debs/*_arm64.deb; do
    dpkg -x "$deb" "$ROOT"
done
# Debian's merged /usr: the loader and libc live in /usr/lib but are looked up
# as /lib/ld-linux-aarch64.so.1 and in /lib/aarch64-linux-gnu.
[ -e "$ROOT/lib" ] || ln -s usr/lib "$ROOT/lib"
[ -x "$ROOT/usr/bin/python3.11" ] || { log "no python3.11 in the root"; exit 1; }

# -- wheels -------------------------------------------------------------------
log "pip download (aarch64 wheels and pure-Python test dependencies)"
"$HOSTPY" -m pip download -q --disable-pip-version-check --no-deps \
    --only-binary=:all: --python-version 3.11 --implementation cp --abi cp311 \
    --platform manylinux_2_28_aarch64 --platform manylinux_2_27_aarch64 \
    --platform manylinux2014_aarch64 --platform manylinux_2_17_aarch64 \
    -d "$CACHE/wheels" "${WHEELS[@]}"
"$HOSTPY" -m pip download -q --disable-pip-version-check --no-deps \
    --only-binary=:all: -d "$CACHE/wheels" "${PURE[@]}"
mkdir -p "$ROOT/site"
"$HOSTPY" - "$CACHE/wheels" "$ROOT/site" "${WHEELS[@]}" "${PURE[@]}" <<'EOF'
import glob, os, re, sys, zipfile
wheels, site, specs = sys.argv[1], sys.argv[2], sys.argv[3:]
for spec in specs:
    name, version = spec.split('==')
    norm = re.sub(r'[-_.]+', '_', name).lower()
    found = [w for w in glob.glob(os.path.join(wheels, '*.whl'))
             if os.path.basename(w).lower().startswith('%s-%s-' % (norm, version))
             and ('none-any' in w or 'aarch64' in w)]
    if len(found) != 1:
        sys.exit('wheel for %s: %r' % (spec, found))
    with zipfile.ZipFile(found[0]) as z:
        for info in z.infolist():
            z.extract(info, site)
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                os.chmod(os.path.join(site, info.filename), mode)
EOF

# -- check that every shared object in the root finds its libraries ---------
log "checking DT_NEEDED of every shared object"
"$HOSTPY" - "$ROOT" <<'EOF'
import os, struct, sys
root = sys.argv[1]

def needed(path):
    with open(path, 'rb') as f:
        data = f.read()
    if data[:4] != b'\x7fELF' or data[4] != 2 or struct.unpack_from('<H', data, 18)[0] != 183:
        return None                                    # not a 64-bit AArch64 ELF
    shoff, = struct.unpack_from('<Q', data, 0x28)
    shentsize, shnum = struct.unpack_from('<HH', data, 0x3a)
    secs = [struct.unpack_from('<IIQQQQIIQQ', data, shoff + i * shentsize) for i in range(shnum)]
    out, rpath = [], ''
    for s in secs:
        if s[1] != 6:                                  # SHT_DYNAMIC
            continue
        strtab = secs[s[6]]
        def string(off):
            start = strtab[4] + off
            return data[start:data.index(b'\0', start)].decode()
        for i in range(s[5] // 16):
            tag, val = struct.unpack_from('<qQ', data, s[4] + 16 * i)
            if tag == 1:
                out.append(string(val))
            elif tag in (15, 29):
                rpath = string(val)
    return out, rpath

dirs = ['usr/lib/aarch64-linux-gnu', 'lib/aarch64-linux-gnu', 'usr/lib']
bad = []
for base in ('usr', 'site'):
    for dp, _, files in os.walk(os.path.join(root, base)):
        for fn in files:
            p = os.path.join(dp, fn)
            if not ('.so' in fn or dp.endswith('/bin')) or os.path.islink(p):
                continue
            try:
                res = needed(p)
            except (OSError, struct.error, ValueError):
                continue
            if res is None:
                continue
            libs, rpath = res
            extra = [r.replace('$ORIGIN', dp) for r in rpath.split(':') if r]
            for lib in libs:
                if not any(os.path.exists(os.path.join(d if d.startswith('/') else os.path.join(root, d), lib))
                           for d in extra + dirs):
                    bad.append('%s needs %s' % (os.path.relpath(p, root), lib))
# extension modules nothing in the tests loads may miss their libraries
optional = ('_curses', '_dbm', '_gdbm', 'nis', 'readline', '_tkinter', '_sqlite3')
hard = [b for b in bad if not any(os.path.basename(b.split()[0]).startswith(o) for o in optional)]
for b in bad:
    print('[build-root]   %s%s' % ('' if b in hard else '(optional) ', b), file=sys.stderr)
sys.exit(1 if hard else 0)
EOF

# -- a Python launcher that goes through qemu --------------------------------
mkdir -p "$ROOT/bin"
cat > "$ROOT/bin/python3" <<'EOF'
#!/bin/sh
# The AArch64 python3.11 under qemu-user.  Generated by build-root.sh.
# argv[0] is this script, so the emulated sys.executable is this launcher and
# the interpreter's subprocesses go through qemu too (no binfmt_misc needed).
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
exec qemu-aarch64 ${QEMU_CPU:+-cpu "$QEMU_CPU"} -L "$ROOT" -0 "$0" \
    "$ROOT/usr/bin/python3.11" "$@"
EOF
chmod +x "$ROOT/bin/python3"
ln -sf python3 "$ROOT/bin/python"

log "smoke test"
PYTHONPATH="$ROOT/site" "$ROOT/bin/python3" -c \
    'import platform, sys, hashlib, ctypes, zipfile; assert platform.machine() == "aarch64", platform.machine(); print(sys.version.split()[0], platform.machine())'

echo "$want_stamp" > "$STAMP"
log "root ready in $ROOT ($(( $(date +%s) - start )) s)"
