"""An independent float64 oracle of the selective scan for the tests.

Written per step over the (batch, dim, nstate) state with einsum, the way mamba-ssm's
``selective_scan_ref`` states the maths, and kept apart from the package's own reference backend
(a time-major addcmul loop) so that the two check each other.
"""

import torch
import torch.nn.functional as F


def scan_oracle(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False):
    """Returns (out, last_state) in float64; differentiable."""
    u, delta, A, B, C = (t.double() for t in (u, delta, A, B, C))
    if delta_bias is not None:
        delta = delta + delta_bias.double()[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    x = u.new_zeros(u.shape[0], u.shape[1], A.shape[1])
    ys = []
    for i in range(u.shape[2]):
        decay = torch.exp(torch.einsum("bd,dn->bdn", delta[:, :, i], A))
        x = decay * x + torch.einsum("bd,bn,bd->bdn", delta[:, :, i], B[:, :, i], u[:, :, i])
        ys.append(torch.einsum("bdn,bn->bd", x, C[:, :, i]))
    y = torch.stack(ys, dim=2)
    if D is not None:
        y = y + u * D.double()[:, None]
    if z is not None:
        y = y * F.silu(z.double())
    return y, x
