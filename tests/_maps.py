"""The writable memory of this process a whole-memory scan reads, for the scan children."""


def writable_regions():
    """``(start, end)`` of the heap, anonymous mappings and thread stacks (``rw``)."""
    with open('/proc/self/maps') as f:
        for line in f:
            parts = line.split()
            start, end = (int(x, 16) for x in parts[0].split('-'))
            name = parts[5] if len(parts) > 5 else ''
            if parts[1].startswith('rw') and (name in ('', '[heap]')
                                              or name.startswith('[stack')):
                yield start, end
