"""Emitters: a concrete Graph materialised as a torch Module, a tf.function, or a numpy evaluation."""
