"""Route every entry into a secret kernel through a scrubbing boundary.

numba calls a kernel from its CPython wrapper (and from its C-callable
``cfunc`` wrapper).  This pass gives each such kernel ``K`` a boundary
function and points the wrappers at it::

    define ptr @cpython.K(...) {            define ptr @cpython.K(...) {
      %s = call i32 @K(ptr %r, ...)   ==>     %s = call i32 @"__secretjit.boundary.K"(ptr %r, ...)

    define internal void @"__secretjit.thunk.K"(ptr %frame) noinline nounwind {
      <load the arguments from %frame>
      %status = call i32 @K(ptr %a0, ...) noinline   ; (inline: without)
      <store %status into %frame>
    }
    define internal i32 @"__secretjit.boundary.K"(ptr %a0, ...) noinline nounwind
        "zero-call-used-regs"="all" {
      <store the arguments into %frame, an alloca>
      %ran = call i32 @secretjit_secret_call(ptr @"__secretjit.thunk.K", ptr %frame, i64 <depth>)
      br %ran == 0 ? done : fallback        ; !prof: done is the fall-through
    done:                         ; ran on the secret stack, which is now zeroed
      ret i32 <status from %frame>
    fallback:                     ; no secret stack for this thread
      <load the arguments from %frame>
      %status2 = call i32 @K(ptr %r0, ...) noinline
      call void asm sideeffect "<zero [sp - depth, sp)>", ...(i64 <depth>)
      ret i32 %status2
    }

``secretjit_secret_call`` (``secretjit/csrc/secretstack.c``) switches to the
thread's secret stack (locked in RAM, left out of core dumps, a guard page
below it), runs the thunk and so the kernel's whole call tree there, and
zeroes the ``depth`` bytes below the secret stack's top before it switches
back.  Where no secret stack can be set up, the boundary runs the kernel in
place and the inline asm zeroes the ``depth`` bytes below the boundary's own
stack pointer instead.  Either way the boundary's epilogue zeroes every
call-clobbered register except the status in the return register (LLVM's
``zero-call-used-regs``, or :mod:`passes.epilogue` for the vector
registers).  ``depth`` (``i64 ptrtoint (ptr
@"__secretjit.depth.K" to i64)``) is a placeholder symbol until
:mod:`passes.stack_depth` writes in the bound computed from the machine code
for the thunk's call tree (and the kernel's, which the fallback calls).  The pass runs before -O3, and the calls are
``noinline``: the fallback's scrub covers the frames below the boundary's
stack pointer, not a kernel inlined into the boundary's own frame.  The
thunk's call may go without it (``inline``: the AOT build's exports
without a constant-time check): the thunk's frame lies on the secret stack
and its bound counts it, and a small kernel inlined there spares a call and
the thunk's saved register (0.4 ns of a trivial AOT export's call on an
Intel Xeon, issue 15).  The JIT keeps it: its constant-time check and
``secretjit ctcheck``'s line maps read the kernel's own function.  The
fallback loads the arguments from ``%frame`` (the runtime leaves them there
when it did not run the thunk) instead of keeping them in callee-saved
registers across the runtime call: two pushes and pops fewer on every call
(0.2 ns).
"""

from .report import PassReport
from .textir import leading_type, quote, text_pass

BOUNDARY_PREFIX = '__secretjit.boundary.'
THUNK_PREFIX = '__secretjit.thunk.'
DEPTH_PREFIX = '__secretjit.depth.'
# The C runtime's trampoline onto the thread's secret stack (secretstack.c).
SECRET_CALL = 'secretjit_secret_call'

# Zero the bytes [sp - depth, sp) without touching memory at or above sp.
# Operand $0 is the depth in bytes (a multiple of 16).
SCRUB_ASM = {
    'x86_64': (
        'movq %rsp, %rdi\\0Asubq $0, %rdi\\0Amovq $0, %rcx\\0A'
        'shrq $$3, %rcx\\0Axorl %eax, %eax\\0Arep stosq',
        'r,~{rdi},~{rcx},~{rax},~{memory},~{dirflag},~{fpsr},~{flags}'),
    # Tested at the top: a depth of 0 (a leaf kernel without a frame) must
    # store nothing, not the 16 bytes at [sp, sp + 16).
    'aarch64': (
        'mov x9, sp\\0Asub x10, x9, $0\\0Ab 2f\\0A'
        '1:\\0Astp xzr, xzr, [x10], #16\\0A2:\\0Acmp x10, x9\\0Ab.lo 1b',
        'r,~{x9},~{x10},~{memory},~{nzcv}'),
}


def boundary_name(kernel):
    return BOUNDARY_PREFIX + kernel


def depth_symbol(kernel):
    return DEPTH_PREFIX + kernel


def thunk_name(kernel):
    return THUNK_PREFIX + kernel


# Branch weights for a conditional branch whose first target is the one
# taken on every call but by failure or fallback: LLVM lays that target
# out as the fall-through (a taken branch costs the front end a fetch
# redirect; issue 15).
LIKELY_WEIGHTS = (2000, 1)
LIKELY = '!prof !{!"branch_weights", i32 %d, i32 %d}' % LIKELY_WEIGHTS


def _ret(status, epilogue):
    """The boundary's return of ``status``; with an ``epilogue``
    (passes.epilogue), a branch to the one exit block that runs it."""
    if epilogue is None:
        return ['  ret i32 %s' % status]
    return ['  br label %exit']


def _exit(epilogue):
    if epilogue is None:
        return []
    asm, clobbers = epilogue
    return ['exit:',
            '  %st = phi i32 [ %status, %done ], [ %status2, %fallback ]',
            '  %%stz = call i32 asm sideeffect "%s", "={ax},0,%s"(i32 %%st)'
            % (asm, clobbers),
            '  ret i32 %stz']


def _boundary_text(kernel_fn, arch, epilogue=None, inline=False):
    asm, constraints = SCRUB_ASM[arch]
    zero = '"zero-call-used-regs"="%s"' % ('all' if epilogue is None else 'all-gpr')
    types = [leading_type(p) for p in kernel_fn.params]
    def args(v):            # the call's arguments, values %<v>0, %<v>1, ...
        return ', '.join('%s %%%s%d' % (t, v, i) for i, t in enumerate(types))
    params = args('a')
    depth = 'i64 ptrtoint (ptr %s to i64)' % quote(depth_symbol(kernel_fn.name))
    frame = '{ %s }' % ', '.join(types + ['i32'])
    status = len(types)
    kernel, thunk = quote(kernel_fn.name), quote(thunk_name(kernel_fn.name))
    lines = [
        '%s = external global i8' % quote(depth_symbol(kernel_fn.name)),
        '',
        # The thunk runs on the secret stack: arguments in, status out.
        'define internal void %s(ptr %%frame) noinline nounwind {' % thunk,
        'entry:',
    ]
    for i, t in enumerate(types):
        lines += ['  %%p%d = getelementptr inbounds %s, ptr %%frame, i32 0, i32 %d'
                  % (i, frame, i),
                  '  %%a%d = load %s, ptr %%p%d' % (i, t, i)]
    lines += [
        '  %%status = call i32 %s(%s)%s' % (kernel, params,
                                             '' if inline else ' noinline'),
        '  %%ps = getelementptr inbounds %s, ptr %%frame, i32 0, i32 %d'
        % (frame, status),
        '  store i32 %status, ptr %ps',
        '  ret void',
        '}',
        '',
        'define internal i32 %s(%s) noinline nounwind %s {'
        % (quote(boundary_name(kernel_fn.name)), params, zero),
        'entry:',
        '  %%frame = alloca %s, align 16' % frame,
    ]
    for i, t in enumerate(types):
        lines += ['  %%p%d = getelementptr inbounds %s, ptr %%frame, i32 0, i32 %d'
                  % (i, frame, i),
                  '  store %s %%a%d, ptr %%p%d' % (t, i, i)]
    lines += [
        '  %%ran = call i32 @%s(ptr %s, ptr %%frame, %s)' % (SECRET_CALL, thunk, depth),
        '  %onstack = icmp eq i32 %ran, 0',
        # The secret stack is the common case: laid out as the fall-through.
        '  br i1 %onstack, label %done, label %fallback, ' + LIKELY,
        'done:',
        '  %%ps = getelementptr inbounds %s, ptr %%frame, i32 0, i32 %d'
        % (frame, status),
        '  %status = load i32, ptr %ps',
    ] + _ret('%status', epilogue) + [
        # No secret stack for this thread: run in place and scrub below sp.
        'fallback:',
    ]
    for i, t in enumerate(types):
        lines += ['  %%r%d = load %s, ptr %%p%d' % (i, t, i)]
    lines += [
        '  %%status2 = call i32 %s(%s) noinline' % (kernel, args('r')),
        '  call void asm sideeffect "%s", "%s"(%s)' % (asm, constraints, depth),
    ] + _ret('%status2', epilogue) + _exit(epilogue) + [
        '}',
    ]
    return lines


@text_pass
def insert_boundaries(mod, entries, arch, epilogue=None, inline=()):
    """Give each ``(wrapper, kernel)`` pair of ``entries`` a scrubbing boundary.

    Returns the module (or text, given text) and a :class:`PassReport`.
    ``epilogue`` (:func:`passes.epilogue.register_epilogue`) zeroes the
    vector and x87 registers before each return instead of LLVM's ``"all"``.
    ``inline``: kernels whose thunk's call may be inlined (the AOT build's
    exports without a constant-time check, which reads the kernel's own
    function, :mod:`passes.constant_time`: the code checked must be the only
    copy that runs); every other call of a kernel is ``noinline``.
    Pairs whose wrapper or kernel is not defined in this module, and wrappers
    already routed through a boundary, are left alone.
    """
    if arch not in SCRUB_ASM:
        raise NotImplementedError("no stack scrub for architecture %r" % arch)
    report = PassReport('insert_boundaries')
    added = []
    made = set()
    for wrapper, kernel in entries:
        wfn = mod.functions.get(wrapper)
        kfn = mod.functions.get(kernel)
        if wfn is None or kfn is None:
            report.count('skipped_not_in_module')
            continue
        if kfn.return_type != 'i32':
            raise ValueError("kernel %s does not use numba's status-code ABI "
                             "(returns %s)" % (kernel, kfn.return_type))
        callee = quote(kernel) + '('
        bare = '@' + kernel + '('
        new_callee = quote(boundary_name(kernel)) + '('
        rewritten = 0
        for i, line in enumerate(wfn.body):
            if ' call ' in line and (callee in line or bare in line):
                wfn.body[i] = line.replace(callee, new_callee).replace(
                    bare, new_callee)
                rewritten += 1
        if not rewritten:
            report.count('skipped_no_call')
            continue
        report.count('calls_rerouted', rewritten)
        if kernel not in made:
            made.add(kernel)
            added.extend([''] + _boundary_text(kfn, arch, epilogue,
                                               inline=kernel in inline))
            report.count('boundaries_added')
    if not added:
        return mod, report
    if not any(line.startswith('declare') and '@%s(' % SECRET_CALL in line
               for _, line in mod.top_level()):
        added.append('declare i32 @%s(ptr, ptr, i64)' % SECRET_CALL)
    mod.append_text('\n'.join(added) + '\n')
    return mod, report
