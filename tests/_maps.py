"""The writable memory of this process a whole-memory scan reads, for the scan children."""


def writable_regions():
    """``(start, end, memfd)`` of the heap, anonymous mappings and thread stacks
    (``rw``), and of memfd_secret mappings (``/secretmem``: the secret arena and
    stacks under that backing), which ``/proc/self/mem`` reads as EIO, so the
    scans read them in place (``memfd`` True)."""
    with open('/proc/self/maps') as f:
        for line in f:
            parts = line.split()
            start, end = (int(x, 16) for x in parts[0].split('-'))
            name = parts[5] if len(parts) > 5 else ''
            if not parts[1].startswith('rw'):
                continue
            if name in ('', '[heap]') or name.startswith('[stack'):
                yield start, end, False
            elif name == '/secretmem':
                yield start, end, True
