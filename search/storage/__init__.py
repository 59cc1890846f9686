"""Reaching the stores before anything is written: the Optuna journal file checked and
mended (`journal`), the Optuna storage and the MLflow tracking store reached (`stores`).

May import: the foundation only.
"""
