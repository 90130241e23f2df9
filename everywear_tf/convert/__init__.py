"""Converters from the original authors' checkpoints to our Keras networks.

* ``torch_pth``: reads ``.pth`` state dicts without PyTorch (restricted unpickler).
* ``tables``: declarative ``Rule``/``Table`` and the strict ``apply_table``.
* ``cpvton_torch``: CP-VTON / CP-VTON+ ``gmm_final.pth`` → Gmm.
* ``viton_tf1``: VITON ``model-15000`` → Edm (stage 1), ``model-6000`` → Rm (stage 2).
* ``output``: converted networks as weights directories with a manifest, and back.
* ``errors``: ``CheckpointError`` and its subclasses.

Nothing is imported here, so ``torch_pth`` and ``errors`` load without TensorFlow.
"""
