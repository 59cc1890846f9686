"""A KerasTuner hypermodel, written as for KerasTuner: a small CNN on the 8x8 digits images.

The service feeds it the 64 scaled pixel columns; it reshapes them to 8x8x1.
"""

import keras


def build_model(hp):
    inputs = keras.Input(shape=(64,))
    x = keras.layers.Reshape((8, 8, 1))(inputs)
    for i in range(hp.Int("conv_blocks", 1, 2)):
        x = keras.layers.Conv2D(hp.Choice(f"filters_{i}", [16, 32, 64]), 3, padding="same",
                                activation="relu")(x)
        if hp.Boolean(f"pool_{i}"):
            x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    if hp.Boolean("dense"):
        with hp.conditional_scope("dense", [True]):
            x = keras.layers.Dense(hp.Int("dense_units", 32, 128, step=32), activation="relu")(x)
    x = keras.layers.Dropout(hp.Float("dropout", 0.0, 0.5))(x)
    outputs = keras.layers.Dense(10, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer=keras.optimizers.Adam(hp.Float("learning_rate", 1e-4, 1e-2, sampling="log")),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model
