"""Experiments built from the whole library: the paper's benchmark table (:mod:`stn.experiments.paper`)
and the offline demo (:mod:`stn.experiments.demo`)."""
