"""The only code that touches paths: atomic writes of results (``store.atomic``) and run-directory
manifests.  Every other layer hands its arrays, datasets and figures to these functions."""
