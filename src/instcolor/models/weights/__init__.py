"""Weights: our format and cache (:mod:`.store`), named sets (:mod:`.registry`), downloads
(:mod:`.http`, :mod:`.download`), and one converter per foreign format (:mod:`.reference`,
:mod:`.mmagic`; the CenterNet detector's in :mod:`instcolor.detection.centernet`).

Order inside: store < reference, mmagic < registry < http < download.
"""
