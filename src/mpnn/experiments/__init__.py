"""Experiments built from many training runs: searches, ensembles, reports and ablations.

==============  ==================================================================================
module          what it holds
==============  ==================================================================================
``search``      seeded random hyperparameter searches (``mpnn search``); finished-run bookkeeping
                (:func:`~mpnn.experiments.search.ensure_run`) and the built-in files' lookup
``ablation``    labelled runs from one base configuration, trained side by side (``mpnn compare``)
``ensemble``    ensembles of the best runs: member selection, mean predictions and their spread
``report``      Table 2-style reports: Markdown tables and bar charts against the paper's columns
``spaces/``     built-in search spaces (JSON), e.g. ``paper``
``ablations/``  built-in ablations (JSON): the paper's comparisons and ``example``
==============  ==================================================================================

Experiments call the trainer (:mod:`mpnn.train`), never the reverse: nothing in ``mpnn.train``
imports from ``mpnn.experiments``.
"""
