"""Rows and what becomes of them: sources (CSV/Parquet, `keras:` sets, npz, image folders),
columns and their encodings, the dataset and its task, the test split, the validation
folds, the preflight of what needs the rows (`preflight`), regression targets, and
preprocessed folds kept for the next trial.

May import: search.space, search.params and the foundation (errors, names, metrics).
"""
