"""From a finished study to the model a user can defend: the top trials rechecked on fresh
folds (`recheck`), an ensemble where it really helps (`ensemble`), the refit on all
training rows (`refit`), the one look at the test rows (`evaluation`, `bootstrap`), and
the whole of it with the champion (`selector`).

May import: trials, engines, models, data, space, params, tracking and the foundation.
"""
