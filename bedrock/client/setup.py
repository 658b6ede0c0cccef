"""For pips too old to build from pyproject.toml alone (Python 3.6 ships pip 18); metadata is in
setup.cfg and pyproject.toml."""

from setuptools import setup

setup()
