"""Deprecated: moved to :mod:`instcolor.models.weights` (store, reference, registry)."""

from instcolor._moved import moved

__getattr__ = moved(__name__, "instcolor.models.weights.store", "instcolor.models.weights.reference", "instcolor.models.weights.registry")
