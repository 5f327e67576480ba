"""x86-64 assembly of a kernel that registers a destructor and runs it, for the stack-bound tests."""


def dtor_asm(name, alloc, nested_call=False):
    """``kernel`` passes destructor ``name`` (a 4.8 KB frame) to ``alloc`` and
    calls ``NRT_MemInfo_call_dtor``; with ``nested_call`` the destructor calls
    it again (a MemInfo releasing another)."""
    nested = ('\tmovabsq\t$NRT_MemInfo_call_dtor, %rax\n\tcallq\t*%rax\n'
              if nested_call else '')
    return '''
kernel:
\tpushq\t%rbx
\tmovabsq\t$"{name}", %rsi
\tmovabsq\t${alloc}, %rax
\tcallq\t*%rax
\tmovabsq\t$NRT_MemInfo_call_dtor, %rax
\tcallq\t*%rax
\tpopq\t%rbx
\tretq
.Lfunc_end0:
"{name}":
\tsubq\t$4800, %rsp
{nested}\taddq\t$4800, %rsp
\tretq
.Lfunc_end1:
\t.size\t"{name}", .Lfunc_end1-"{name}"
'''.format(name=name, alloc=alloc, nested=nested)
