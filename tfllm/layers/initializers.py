"""Initializer helpers shared by the layers that own several weights."""

import keras


def clone_initializer(initializer):
    """Returns a fresh copy of `initializer`.

    An unseeded Keras initializer draws its seed once, when it is made, so one instance shared by several weights of
    the same shape (query, key and value kernels) would give them identical values. A copy made from the config draws
    a seed of its own; a seeded initializer stays seeded.
    """
    initializer = keras.initializers.get(initializer)
    return initializer.__class__.from_config(initializer.get_config())
