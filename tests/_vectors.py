"""Tiny loader for the known-answer vectors in tests/vectors/*.json (bytes stored as hex)."""

import json
from pathlib import Path

import pytest

_DIR = Path(__file__).parent / "vectors"


def load(name):
    """The ``vectors`` member of tests/vectors/<name>.json."""
    with open(_DIR / f"{name}.json", encoding="utf-8") as f:
        return json.load(f)["vectors"]


def params(vectors, *fields):
    """pytest.param(*(vector[f] for f in fields), id=vector["source"]) for each vector."""
    return [pytest.param(*(v[f] for f in fields), id=v["source"]) for v in vectors]


def h(s):
    """bytes from a hex string."""
    return bytes.fromhex(s)
