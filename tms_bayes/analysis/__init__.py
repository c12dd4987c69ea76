"""Analysis of results: figures and reports now; phases, occupancy and diagnostics build on it.
Submodules are imported explicitly (``from tms_bayes.analysis import plots``)."""
