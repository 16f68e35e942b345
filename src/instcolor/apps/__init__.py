"""Applications on top of the pipeline: film (:mod:`.video`) and the web page (:mod:`.web`)."""
