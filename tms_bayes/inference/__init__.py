"""Running models: compile a PyMC model to JAX, NUTS / SMC / SGLD kernels, sweeps over n and truths,
λ̂ estimation and SGD dynamics.  Results are written through :mod:`tms_bayes.store`."""
