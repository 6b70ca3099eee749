"""The ConvLSTM models of the paper (Cases 1-4): definition, training, evaluation, artifacts.

``models`` never imports ``service``: the service depends on the model, not the reverse.
"""
