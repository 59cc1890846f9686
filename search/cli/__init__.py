"""The command line, thin: arguments (`args`) -> the API -> exit codes (`main`); the pool's
commands (`pool`) and `search best` (`best`). The layers below are imported inside each
command: they pull in TensorFlow, MLflow or Optuna, and `search --help` and an input error
answer without them.
"""
