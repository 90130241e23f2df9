"""Converter tests. Only the checks that write fresh torch.save files need torch."""

import pytest


def torch_or_skip():
    """The torch module, or a skip saying why (not installed, or not importable)."""
    try:
        import torch  # pylint: disable=import-outside-toplevel
    except ImportError as e:
        pytest.skip(f"torch is not importable ({e}); install the torch extra "
                    f"(pip install '.[torch]') to run the fresh-torch.save checks")
    return torch
