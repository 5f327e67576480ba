"""Build the C runtime (secret arena and secret stack) next to the package.

It is a plain shared library that secretjit loads with ctypes, not a Python
extension module: it has no Python API and the same sources go into every
AOT library.  Everything else is in pyproject.toml.
"""
import runpy

from setuptools import Extension, setup

# The runtime's file names, from secretjit/_csrc.py (run, not imported: the
# package needs its dependencies, which may not be installed yet).
_CSRC = runpy.run_path('secretjit/_csrc.py')
SOURCES = ['secretjit/csrc/' + name for name in _CSRC['RUNTIME']]

setup(ext_modules=[Extension(
    'secretjit._secretmem', sources=SOURCES,
    depends=['secretjit/csrc/' + name for name in _CSRC['HEADERS']],
    extra_compile_args=['-O2', '-fvisibility=hidden', '-std=gnu11', '-Wall'],
)])
