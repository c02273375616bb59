from setuptools import setup

setup(cffi_modules=["src/pilotfish/capture/_xsk_build.py:ffibuilder"])
