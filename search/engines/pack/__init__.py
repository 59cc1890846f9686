"""The pack engine: many members of the built-in MLP trained together as compiled JAX
programs. `engine` is the Engine; `carried` what it carries; `shape` what one program is
built for; `group` one program trained epoch by epoch; `members` between a pack and its
members (padded weights, rows on the device); `net` the compiled program; `losses`,
`regularizers` and `optimizers` Keras' losses, penalties and update rules (`constants`
their default constants); `plateau` ReduceLROnPlateau on the host; `device` the JAX device
and its compile cache.
"""
