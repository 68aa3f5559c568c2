"""Reporting: from a run's predictions to its record, tables, figures and the papers' layouts.

* :mod:`stages.reporting.metrics` -- ACC (Hungarian), NMI (max / sqrt / arithmetic), ARI,
  pair precision;
* :mod:`stages.reporting.runs` -- one run's record: labels checked against the data, metrics,
  diagnostics (the evaluate stage);
* :mod:`stages.reporting.plots` -- the per-run figure (t-SNE maps, curves, diagnostics);
* :mod:`stages.reporting.tables` -- the aggregate stage's tables beside the papers' numbers;
* :mod:`stages.reporting.paper_tables` -- the papers' tables in their own layout (Markdown,
  LaTeX, HTML) and the sweep tables;
* :mod:`stages.reporting.figure_plan` -- which of the papers' figures a configuration can draw,
  from which files;
* :mod:`stages.reporting.paper_figures` -- drawing those figures;
* :mod:`stages.reporting.paper_index` -- the index of one paper's tables and figures;
* :mod:`stages.reporting.sweeps` -- a recipe expanded over a grid, each point a method;
* :mod:`stages.reporting.records` -- the paper-schedule records kept in ``docs/reproduction/``.

A new table, figure or metric goes here. Nothing here imports a stage's entry point
(``stages/<stage>.py``).
"""
