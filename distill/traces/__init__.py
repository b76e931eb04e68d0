"""Trace generation: the data-building half of distillation (``--mode generate``).

problems (``problems.py``) → de-duplicated and decontaminated before any teacher call (``filters.py``) → the
teacher samples ``num_generations`` traces per problem through an engine → every trace graded and judged, the
``--keep`` policy picks the training rows (``verdicts.py``) → ``generations.jsonl``, ``dataset.jsonl``,
``data_report.json`` and a dataset card in the run folder (``run.py``).
"""
