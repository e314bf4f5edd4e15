"""An nn.Module over smyrf_torch.attention: one method with fixed options and its own generator.

Each call draws fresh randomness from the module's generator (seeded once), so a training run is
reproducible from the seed and no two calls share hashes. Attention dropout follows module.train().
Tested by tests/python/test_torch_ops.py.
"""
import torch

from ._ops import attention, method_spec


class Attention(torch.nn.Module):
    def __init__(self, method="smyrf", *, seed=0, **options):
        super().__init__()
        self.method = method
        self.options = dict(options)
        self.spec = method_spec(method, self.options)  # fails now on a bad option, not at the first call
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)

    def forward(self, q, k, v, key_keep=None, query_keep=None, causal=False, scale=None, return_lse=False):
        return attention(q, k, v, self.method, key_keep=key_keep, query_keep=query_keep, causal=causal, scale=scale,
                         generator=self.generator, training=self.training, return_lse=return_lse, **self.options)

    def extra_repr(self):
        return f"{self.spec}, seed={self.seed}"
