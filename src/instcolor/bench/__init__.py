"""The benchmark behind ``instcolor bench`` (targets to check live in ``benchmarks/``)."""
