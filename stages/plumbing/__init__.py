"""Workflow plumbing: what the Snakefile and every stage's command line share.

* :mod:`stages.plumbing.config` -- reading, merging and validating the configuration, and the
  recipe of each autoencoder, init and method;
* :mod:`stages.plumbing.cli` -- the command line every stage shares (errors as one line);
* :mod:`stages.plumbing.codedeps` -- which source files each job runs (the rules' inputs);
* :mod:`stages.plumbing.upstream` -- the key of every recipe and file upstream of a job;
* :mod:`stages.plumbing.provenance` -- what made an artifact (config hash, versions, host);
* :mod:`stages.plumbing.artifacts` -- atomic readers and writers of HDF5, JSON and CSV;
* :mod:`stages.plumbing.errors` -- the errors a user can fix;
* :mod:`stages.plumbing.sampling` -- the seeded subset of rows the figures and snapshots draw.

A new configuration option's checks, a new artifact format or a new rule-level key goes here.
Nothing here imports a stage's entry point (``stages/<stage>.py``), nor torch: the Snakefile
imports config, codedeps and upstream, the registries of :mod:`stages.methods`,
:mod:`stages.nets` and :mod:`stages.data`, and no training code.
"""
