"""The one compiled part: the load generator's read loop (clients/readloop.c).

Everything else is configured in pyproject.toml. ``optional``: without a C compiler or
Python's headers the install still succeeds and clients/reader.py runs the same loop in
Python (``python -m duplexbench doctor`` says which).
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("clients.readloop", ["clients/readloop.c", "clients/readstore.c"],
                             depends=["clients/readstore.h"], optional=True)])
