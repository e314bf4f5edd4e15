"""SMYRF and its peers from PyTorch, through the harness's C++ kernels.

    smyrf_torch.attention(q, k, v, method="smyrf", n_hashes=2, q_cluster_size=32)  # one call
    smyrf_torch.Attention("hyper", block_size=64)                                  # an nn.Module
    smyrf_torch.methods()                                                          # options, capabilities
    smyrf_torch.register_with_transformers()   # attn_implementation="smyrf", "hyper", ...

Importing it loads the operator library that CMake builds (scripts/setup.sh); without it the import
fails with OperatorLibraryNotFound, naming the command that builds it.
"""
from ._library import OperatorLibraryNotFound
from ._ops import attention, methods
from .hf import attention_options, register_with_transformers, registered_name
from .module import Attention

__all__ = ["Attention", "OperatorLibraryNotFound", "attention", "attention_options", "methods",
           "register_with_transformers", "registered_name"]
