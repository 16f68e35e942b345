"""Deprecated: moved to :mod:`instcolor.models` (config, backbone, fusion, model)."""

from instcolor._moved import moved

__getattr__ = moved(__name__, "instcolor.models.config", "instcolor.models.backbone", "instcolor.models.fusion", "instcolor.models.model", "instcolor.color.lab")
