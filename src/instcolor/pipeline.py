"""Deprecated: moved to :mod:`instcolor.inference.pipeline`."""

from instcolor._moved import moved

__getattr__ = moved(__name__, "instcolor.inference.pipeline", "instcolor.devices")
