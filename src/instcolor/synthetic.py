"""Deprecated: moved to :mod:`instcolor.training.synthetic`."""

from instcolor._moved import moved

__getattr__ = moved(__name__, "instcolor.training.synthetic")
