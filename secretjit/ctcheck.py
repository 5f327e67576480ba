"""Dynamic constant-time check: secret kernels under valgrind memcheck (ctgrind).

``python -m secretjit ctcheck MODULE.py`` runs the cases ``MODULE.py``
declares with ``ctcheck_cases()`` (an iterable of ``(kernel, args)``) under
valgrind memcheck, with the contents of each kernel's secret array
arguments (``secret_jit(secret=...)``) marked undefined for the duration of
the call.  memcheck then reports every conditional branch and every memory
address that depends on them ("Conditional jump or move depends on
uninitialised value", "Use of uninitialised value"); findings inside the
kernels' machine code are mapped to Python ``file:line`` and printed, all
others (the interpreter, numba's wrappers) are ignored.

Three steps, one valgrind run:

1. *prepare* (no valgrind): compile every case's kernel with
   ``NUMBA_CPU_NAME=haswell`` (valgrind has no AVX-512) into a fresh numba
   cache and record, from an object file with line tables, which Python
   line each machine-code offset of each function comes from.
2. *run* (under valgrind, ``PYTHONMALLOC=malloc``): load the kernels from
   that cache, record where their functions were loaded, mark the secret
   arguments undefined (memcheck client requests from a small C helper
   compiled with the system compiler), call, mark them defined again.
3. *report*: memcheck's XML errors whose stack has a frame in a kernel.

``secretjit.declassify`` marks its result defined under ctcheck (the build
sets ``SECRETJIT_CTCHECK=1``).  memcheck does not model division timing
(that is the static check's machine-code rule) nor secret scalar
arguments (only array contents are marked).
"""

import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

ENV_FLAG = 'SECRETJIT_CTCHECK'

_HELPER_C = r'''
#include <stddef.h>
#include <valgrind/memcheck.h>
int ct_running(void) { return RUNNING_ON_VALGRIND; }
void ct_undefined(void *p, size_t n) { VALGRIND_MAKE_MEM_UNDEFINED(p, n); }
void ct_defined(void *p, size_t n) { VALGRIND_MAKE_MEM_DEFINED(p, n); }
'''


class CtcheckError(Exception):
    """ctcheck cannot run (no valgrind, no cases, bad module)."""


def _load_module(path):
    import importlib.util
    path = os.path.abspath(path)
    if not os.path.exists(path):
        raise CtcheckError("%s does not exist" % path)
    sys.path.insert(0, os.path.dirname(path))
    name = os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    cases = getattr(mod, 'ctcheck_cases', None)
    if cases is None:
        raise CtcheckError(
            "%s defines no ctcheck_cases(); add a function returning "
            "[(kernel, args), ...] with the secret_jit(secret=...) kernels "
            "to check and example arguments" % path)
    out = []
    for kernel, args in cases():
        if getattr(kernel, '_ct_policy', None) is None:
            raise CtcheckError(
                "%s is not a secret_jit kernel with secret=(...); ctcheck "
                "marks the parameters secret= names" % (kernel,))
        out.append((kernel, tuple(args)))
    return out


def _functions(obj):
    """{name: (section index, offset, size)} of an ELF object's functions."""
    from elftools.elf.elffile import ELFFile
    elf = ELFFile(io.BytesIO(obj))
    out = {}
    for sym in elf.get_section_by_name('.symtab').iter_symbols():
        if sym['st_info']['type'] == 'STT_FUNC' and sym['st_size']:
            out[sym.name] = (sym['st_shndx'], sym['st_value'], sym['st_size'])
    return out


def _line_map(obj, paths=None):
    """{function: [[offset, "file:line"], ...]} from an object's line tables.

    ``paths`` maps a file's base name to its full path (the compile unit's
    directory is in a string section this reader leaves unrelocated).
    """
    paths = paths or {}
    from elftools.elf.elffile import ELFFile
    elf = ELFFile(io.BytesIO(obj))
    funcs = _functions(obj)
    rows = []
    if elf.has_dwarf_info():
        # single code section: line-program addresses are section offsets
        dwarf = elf.get_dwarf_info(relocate_dwarf_sections=False)
        for cu in dwarf.iter_CUs():
            lp = dwarf.line_program_for_CU(cu)
            if lp is None:
                continue
            files = lp['file_entry']
            dirs = lp['include_directory']
            base = 1 if lp.header.version < 5 else 0
            for entry in lp.get_entries():
                st = entry.state
                if st is None or st.end_sequence or not st.line:
                    continue
                fe = files[st.file - base]
                name = fe.name.decode()
                if not name.startswith('/') and 0 < fe.dir_index - base + 1 <= len(dirs) \
                        and fe.dir_index >= base and fe.dir_index - base < len(dirs) \
                        and fe.dir_index:
                    name = os.path.join(dirs[fe.dir_index - base].decode(), name)
                name = paths.get(name, name)
                rows.append((st.address, '%s:%d' % (name, st.line)))
    rows.sort()
    out = {}
    for fname, (_, start, size) in funcs.items():
        out[fname] = [[a - start, loc] for a, loc in rows if start <= a < start + size]
    return out


def _cases_libraries(cases):
    for kernel, args in cases:
        sig = kernel.signatures[-1] if kernel.signatures else None
        yield kernel, args, kernel.overloads[sig].library, kernel.overloads[sig].fndesc


def prepare(path, out_json):
    """Step 1: compile the cases and write each function's line map."""
    import llvmlite.binding as ll
    from . import constant_time, passes
    cases = _load_module(path)
    maps = {'__symbols__': {}}
    for kernel, args in cases:
        kernel(*args)                           # compiles into the cache
    for kernel, args, lib, fndesc in _cases_libraries(cases):
        # the run loads this object from the cache, where numba keeps no
        # copy to read: its symbol table goes with the line maps
        maps['__symbols__'][fndesc.llvm_func_name] = _functions(
            lib._get_compiled_object())
        text = getattr(lib, '_ct_debug_text', None)
        if text is None:
            continue
        # the secret passes after the check, which change function headers
        # (register zeroing adds instructions at returns), not bodies
        text = passes.internalize_linkonce(text)[0]
        text = passes.zero_call_used_regs(text, skip=lib._wrappers())[0]
        # numba's "directives only" line tables have no .debug_info unit,
        # which the DWARF reader needs; the line program is the same
        # (and no variable records, which LineTablesOnly must not have)
        text = passes.line_tables_for_dwarf(text)[0]

        paths = {f: os.path.join(d, f) for f, d in re.findall(
            r'!DIFile\(filename: "([^"]*)", directory: "([^"]*)"\)', text)}
        mod = ll.parse_assembly(text)
        with constant_time.hardened_backend(lib._codegen.arch):
            obj = lib._codegen._tm.emit_object(mod)
        jit = _functions(lib._get_compiled_object())
        for fname, lines in _line_map(obj, paths).items():
            size = _functions(obj)[fname][2]
            maps[fname] = {'lines': lines, 'exact': jit.get(fname, (0, 0, -1))[2] == size}
    with open(out_json, 'w') as f:
        json.dump(maps, f)


def _helper(build_dir):
    import ctypes
    cc = os.environ.get('CC', 'cc')
    src = os.path.join(build_dir, 'ctgrind.c')
    so = os.path.join(build_dir, 'libctgrind.so')
    with open(src, 'w') as f:
        f.write(_HELPER_C)
    res = subprocess.run([cc, '-O1', '-shared', '-fPIC', src, '-o', so],
                         capture_output=True, text=True)
    if res.returncode:
        raise CtcheckError("cannot compile the client-request helper with %s "
                           "(needs valgrind's headers, Debian package "
                           "valgrind): %s" % (cc, res.stderr.strip()))
    lib = ctypes.CDLL(so)
    lib.ct_undefined.argtypes = lib.ct_defined.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    return lib


def run(path, out_json, build_dir, maps_json):
    """Step 2 (under valgrind): call the cases with secrets undefined."""
    import inspect

    import numpy as np
    helper = _helper(build_dir)
    cases = _load_module(path)
    ranges = {}
    for kernel, args in cases:
        kernel(*args)                           # loads from the cache
    with open(maps_json) as f:
        symbols = json.load(f)['__symbols__']
    for kernel, args, lib, fndesc in _cases_libraries(cases):
        entry = fndesc.llvm_func_name
        funcs = symbols[entry]
        addr = lib.get_pointer_to_function(entry)
        shndx, off, _ = funcs[entry]
        base = addr - off
        for name, (sec, start, size) in funcs.items():
            if sec == shndx and not name.startswith(('_ZN7cpython', 'cfunc.')):
                ranges[name] = [base + start, base + start + size]
    for kernel, args in cases:
        params = list(inspect.signature(kernel.py_func).parameters)
        secret = [args[params.index(n)] for n in kernel._ct_policy.secret]
        arrays = [a for a in secret if isinstance(a, np.ndarray) and a.nbytes]
        for a in arrays:
            helper.ct_undefined(a.ctypes.data, a.nbytes)
        try:
            kernel(*args)
        finally:
            for a in arrays:
                helper.ct_defined(a.ctypes.data, a.nbytes)
        # results computed from secrets are the caller's: defined again
        for a in args:
            if isinstance(a, np.ndarray) and a.nbytes:
                helper.ct_defined(a.ctypes.data, a.nbytes)
    with open(out_json, 'w') as f:
        json.dump(ranges, f)


_KINDS = {'UninitCondition': 'branch', 'UninitValue': 'secret-index',
          'SyscallParam': 'syscall'}     # memcheck kinds that mean "depends on a secret"


def _in_stack_checks(frame):
    """Whether the innermost frame of an error is the secret stack's own
    after-call check (secretjit/csrc/secretstack.c in the runtime library):
    it reads the window below the scrub depth on purpose, memory that
    memcheck marks undefined when frames below a stack pointer pop, to find
    writes that went deeper (and zeroes them).  Its branch is the runtime's
    safety net, not one of the kernel's: without this, memcheck's report
    names the first JIT frame up the stack, the kernel's boundary."""
    if frame is None:
        return False
    obj = os.path.basename(frame.findtext('obj') or '')
    return obj.startswith('_secretmem') and frame.findtext('file') == 'secretstack.c'


def _findings(xml_path, ranges, maps):
    tree = ET.parse(xml_path)
    spans = sorted((lo, hi, name) for name, (lo, hi) in ranges.items())
    out = []
    for err in tree.getroot().iter('error'):
        kind = err.findtext('kind')
        if kind not in _KINDS:
            # e.g. InvalidWrite: the boundary's scrub writes below the stack
            # pointer by design; only secret-dependence is a finding here
            continue
        frames = err.find('stack')
        if frames is None:
            continue
        if _in_stack_checks(frames.find('frame')):
            continue
        for frame in frames.iter('frame'):
            ip = int(frame.findtext('ip'), 16)
            hit = next((s for s in spans if s[0] <= ip < s[1]), None)
            if hit is None:
                continue
            lo, _, name = hit
            off = ip - lo
            lines = maps.get(name, {}).get('lines', [])
            loc = ''
            for o, where in lines:
                if o <= off:
                    loc = where
                else:
                    break
            out.append({'kind': _KINDS.get(kind, kind), 'function': name,
                        'offset': off, 'location': loc,
                        'what': err.findtext('what') or
                        (err.find('xwhat').findtext('text')
                         if err.find('xwhat') is not None else kind)})
            break
    seen, unique = set(), []
    for f in out:
        key = (f['kind'], f['function'], f['location'] or f['offset'])
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique


def check(path, valgrind='valgrind', verbose=False):
    """Run all three steps; return the findings (a list of dicts)."""
    if shutil.which(valgrind) is None:
        raise CtcheckError("valgrind not found; install it (Debian: apt-get "
                           "install valgrind)")
    work = tempfile.mkdtemp(prefix='secretjit-ctcheck-')
    # A named CPU with its own feature set (not the host's, which has
    # AVX-512 and which valgrind's virtual CPU does not match): the same
    # code, and the same cache key, in both processes.
    env = dict(os.environ, NUMBA_CPU_NAME=os.environ.get('CTCHECK_CPU', 'haswell'),
               NUMBA_CPU_FEATURES='', NUMBA_CACHE_DIR=os.path.join(work, 'cache'),
               **{ENV_FLAG: '1'})
    maps_json = os.path.join(work, 'lines.json')
    ranges_json = os.path.join(work, 'ranges.json')
    xml_path = os.path.join(work, 'memcheck.xml')
    me = [sys.executable, '-m', 'secretjit.ctcheck']
    res = subprocess.run(me + ['--prepare', path, maps_json], env=env,
                         capture_output=True, text=True)
    if res.returncode:
        raise CtcheckError("compiling the cases failed:\n" + res.stderr[-4000:])
    env['PYTHONMALLOC'] = 'malloc'
    cmd = [valgrind, '--tool=memcheck', '--xml=yes', '--xml-file=' + xml_path,
           '--error-limit=no', '--track-origins=no', '--undef-value-errors=yes',
           sys.executable, '-m', 'secretjit.ctcheck', '--run', path, ranges_json, work,
           maps_json]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if res.returncode or not os.path.exists(ranges_json):
        raise CtcheckError("the run under valgrind failed (status %d):\n%s"
                           % (res.returncode, res.stderr[-4000:]))
    with open(maps_json) as f:
        maps = json.load(f)
    with open(ranges_json) as f:
        ranges = json.load(f)
    findings = _findings(xml_path, ranges, maps)
    if not verbose:
        shutil.rmtree(work, ignore_errors=True)
    return findings


def format_finding(f):
    from .stack_bound import readable
    where = f['location'] or '<%s+0x%x>' % (readable(f['function']), f['offset'])
    return '%s: %s in %s: %s (valgrind memcheck)' % (
        where, f['kind'], readable(f['function']), f['what'])


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ['--prepare']:
        prepare(argv[1], argv[2])
        return 0
    if argv[:1] == ['--run']:
        run(argv[1], argv[2], argv[3], argv[4])
        return 0
    raise SystemExit("use: python -m secretjit ctcheck MODULE.py")


if __name__ == '__main__':
    sys.exit(main())
