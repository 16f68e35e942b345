"""Deprecated: moved to :mod:`instcolor.models.weights.download`."""

from instcolor._moved import moved

__getattr__ = moved(__name__, "instcolor.models.weights.download", "instcolor.models.weights.http")
