"""Deprecated: moved to :mod:`instcolor.models.weights.registry`."""

from instcolor._moved import moved

__getattr__ = moved(__name__, "instcolor.models.weights.registry", "instcolor.models.weights.download")
