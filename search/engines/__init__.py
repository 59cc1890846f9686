"""Engines train members (a trial's fold with its parameters and rows) and hand back each
member's result: `base` is the seam only, `sequential` fits one Keras model at a time,
`pack/` trains many members as one compiled JAX program, `choose` is the `auto` rule.

May import: search.models, search.data, search.space, search.params and the foundation;
never the trials, selection, tracking or the pool.
"""
