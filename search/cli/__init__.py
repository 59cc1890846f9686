"""The command line, thin: arguments (`args`) -> the API -> exit codes (`main`), and the
pool's commands (`pool`). The layers below are imported inside each command: they pull in
TensorFlow, MLflow or Optuna, and `search --help` and an input error answer without them.
"""
