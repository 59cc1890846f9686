"""The networks: the built-in MLP/CNN/text model built from a trial's parameters (`build`),
a KerasTuner hypermodel driven by Optuna (`hypermodel`), the training knobs beside the
architecture (`knobs`), a built model's numbers (`forward`), and a final model's outputs
(`outputs`).

May import: search.data, search.space, search.params and the foundation.
"""
