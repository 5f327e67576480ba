"""What the secret mappings look like under the backing in force.

``SECRETJIT_SECRET_MEMORY`` (secretjit/csrc/backing.c) chooses memfd_secret
(the default where the kernel has it) or mlock'ed anonymous memory.  Both
are left out of core dumps (VmFlags ``dd``) and locked (``lo``); what keeps
a forked child from the parent's pages differs: MADV_WIPEONFORK (``wf``) on
a private mapping, or, for a shared memfd_secret mapping (``sh``, perms
``...s``), the atfork handler that replaces it in the child.
"""

import secretjit


def memfd():
    return secretjit.memory_status()['backing'] == 'memfd_secret'


def fork_flag():
    """The VmFlag a secret mapping carries for fork: ``wf`` or ``sh``."""
    return 'sh' if memfd() else 'wf'


def share():
    """The last letter of a secret mapping's perms: ``s`` or ``p``."""
    return 's' if memfd() else 'p'
