"""Deprecated: moved to :mod:`instcolor.inference` (and the benchmark to :mod:`instcolor.bench`)."""

from instcolor._moved import moved

__getattr__ = moved(__name__, "instcolor.inference")
