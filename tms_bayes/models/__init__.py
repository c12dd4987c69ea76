"""Model builders and their data.

Submodules are imported explicitly (``from tms_bayes.models.data import tms_inputs``) so that
numpy-only users never pay for importing PyMC.
"""
