"""A study's trials: what they share (`context`), one trial from its parameters to its
record through an engine (`objective`), several trials trained together (`packs`).

May import: engines, models, data, space, params, tracking, the study and the foundation.
"""
