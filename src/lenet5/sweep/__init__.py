"""`lenet5 sweep`: many training runs as one Optuna study, on one machine or many.

    space.py   what `--param NAME=SPEC` means: the options a study varies and their ranges
    study.py   the study: its storage, sampler and pruner, each trial an ordinary run
               directory trained by `lenet5 train`'s own code, the table, repeats over seeds
    plots.py   the pictures of `lenet5 report STUDY_DIR`, Optuna's own, drawn offline

Optuna schedules the trials and keeps the study (a journal file in the study directory, or a
database that several machines share); lenet5 writes no scheduler of its own. Needs the
`sweep` extra (optuna).
"""
