"""The core: plain, typed Python that knows nothing of Optuna at run time.

``space`` (the search space and ``TrialParams``), ``model`` (the BN-CNN), ``data`` and
``formats`` (datasets on the device), ``train`` (the training loop), ``packed`` (K models of
one shape trained as one, each exactly as ``train`` would), ``seeding`` and ``cpu`` (how many
torch threads to run). Frozen configs in, typed results out; the search, the CLI and the
reports are built on top.
"""
