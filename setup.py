"""Build the C runtime (secret arena and secret stack) next to the package.

It is a plain shared library that secretjit loads with ctypes, not a Python
extension module: it has no Python API and the same sources go into every
AOT library.  Everything else is in pyproject.toml.
"""
from setuptools import Extension, setup

SOURCES = ['secretjit/csrc/common.c', 'secretjit/csrc/backing.c', 'secretjit/csrc/arena.c',
           'secretjit/csrc/secretstack.c']

setup(ext_modules=[Extension(
    'secretjit._secretmem', sources=SOURCES, depends=['secretjit/csrc/secretmem.h'],
    extra_compile_args=['-O2', '-fvisibility=hidden', '-std=gnu11', '-Wall'],
)])
