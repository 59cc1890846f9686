"""Keras 3's default optimizer constants, as the pack's program and its members' starting
hyperparameters read them (no JAX here: the host reads them before a pack trains)."""

from __future__ import annotations

EPSILON = 1e-7  # Keras' optimizers' epsilon
B1, B2 = 0.9, 0.999  # beta_1 and beta_2 of Adam and its kin
LION_B2 = 0.99  # Lion's beta_2 (its beta_1 is B1)
