"""A Mamba-1 mixer interchangeable with mamba-ssm's ``mamba_simple.Mamba``.

Constructor arguments and defaults, initialisation, parameter names and shapes are mamba-ssm's, so
``load_state_dict(strict=True)`` works in both directions with mamba-ssm 1.x/2.x checkpoints. The
forward pass is :func:`sepmamba_sb.ops.mamba_mixer`, which runs wherever :mod:`sepmamba_sb.ops` has a
selective-scan backend and chooses it.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from sepmamba_sb.ops import BACKENDS, MambaState, MixerWeights, mamba_mixer


class Mamba(nn.Module):
    """Mamba-1 selective state-space mixer (Gu & Dao, 2023).

    ``in_proj`` splits the input into ``x`` and a gate ``z``; ``x`` goes through a causal depthwise
    conv and SiLU, ``x_proj`` gives the input-dependent ``dt`` (rank ``dt_rank``), ``B`` and ``C``;
    ``dt_proj`` lifts ``dt`` to ``d_inner`` channels; the selective scan (``A = -exp(A_log)``, skip
    ``D``, ``softplus(dt + dt_proj.bias)``) is gated by ``silu(z)``; ``out_proj`` maps back.

    Parameters
    ----------
    d_model : int
        Input and output channels.
    d_state : int
        SSM state size N per channel.
    d_conv : int
        Width of the causal depthwise conv.
    expand : int
        ``d_inner = expand * d_model``.
    dt_rank : int or "auto"
        Rank of the dt projection; "auto" is ``ceil(d_model / 16)``.
    dt_min, dt_max : float
        Range of the initial step sizes, drawn log-uniformly.
    dt_init : {"random", "constant"}
        Initialisation of ``dt_proj.weight``.
    dt_scale : float
        Scale of that initialisation.
    dt_init_floor : float
        Lower clamp of the initial step sizes.
    conv_bias : bool
        Bias in the conv.
    bias : bool
        Biases in ``in_proj`` and ``out_proj``.
    use_fast_path : bool
        With the mamba_ssm backend, run mamba-ssm's fused ``mamba_inner_fn`` (needs causal-conv1d).
    layer_idx : int, optional
        Kept for mamba-ssm compatibility (its incremental decoding cache key).
    device, dtype
        Factory arguments of the parameters (``A_log`` and ``D`` stay float32, as in mamba-ssm).
    backend : str, optional
        Not in mamba-ssm: this module's selective-scan backend (``"mamba_ssm"``, ``"cpu"`` or
        ``"reference"``); ``None`` (default) lets :func:`sepmamba_sb.ops.resolve_backend` choose.

    Example
    -------
    >>> mixer = Mamba(d_model=64)
    >>> mixer(torch.randn(2, 100, 64)).shape
    torch.Size([2, 100, 64])
    """

    def __init__(self, d_model, d_state=16, d_conv=4, expand=2, dt_rank="auto", dt_min=0.001, dt_max=0.1,
                 dt_init="random", dt_scale=1.0, dt_init_floor=1e-4, conv_bias=True, bias=False,
                 use_fast_path=True, layer_idx=None, device=None, dtype=None, backend=None):
        factory_kwargs = {"device": device, "dtype": dtype}
        super().__init__()
        if backend is not None and backend not in BACKENDS:
            raise ValueError(f"Mamba: backend must be None or one of {BACKENDS}, got {backend!r}")
        self.d_model = d_model
        self.d_state = d_state
        self.d_conv = d_conv
        self.expand = expand
        self.d_inner = int(expand * d_model)
        self.dt_rank = math.ceil(d_model / 16) if dt_rank == "auto" else dt_rank
        self.use_fast_path = use_fast_path
        self.layer_idx = layer_idx
        self.backend = backend

        # created in mamba-ssm's order, so that one seed gives the same weights as mamba-ssm
        self.in_proj = nn.Linear(d_model, 2 * self.d_inner, bias=bias, **factory_kwargs)
        self.conv1d = nn.Conv1d(self.d_inner, self.d_inner, kernel_size=d_conv, groups=self.d_inner,
                                padding=d_conv - 1, bias=conv_bias, **factory_kwargs)
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False, **factory_kwargs)
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True, **factory_kwargs)
        self._init_dt_proj(dt_init, dt_scale, dt_min, dt_max, dt_init_floor)
        self.A_log = nn.Parameter(self._s4d_real_log_A(device))  # float32 whatever dtype is
        self.A_log._no_weight_decay = True
        self.D = nn.Parameter(torch.ones(self.d_inner, device=device))
        self.D._no_weight_decay = True
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=bias, **factory_kwargs)

    def _s4d_real_log_A(self, device) -> torch.Tensor:
        """log of S4D-real A: row ``[1, 2, ..., d_state]`` for every channel, float32, (d_inner, d_state)."""
        row = torch.arange(1, self.d_state + 1, dtype=torch.float32, device=device)
        return torch.log(row).expand(self.d_inner, self.d_state).contiguous()

    def _init_dt_proj(self, dt_init, dt_scale, dt_min, dt_max, dt_init_floor) -> None:
        """Weights ~ U(+-dt_rank^-0.5 * dt_scale) (or that constant); bias = softplus^-1(dt) with
        dt log-uniform in [dt_min, dt_max], floored at dt_init_floor. The bias is marked
        ``_no_reinit`` so that :func:`sepmamba_sb.nnet.mamba_init_weights` keeps it."""
        std = self.dt_rank**-0.5 * dt_scale
        if dt_init == "constant":
            nn.init.constant_(self.dt_proj.weight, std)
        elif dt_init == "random":
            nn.init.uniform_(self.dt_proj.weight, -std, std)
        else:
            raise ValueError(f"Mamba: dt_init must be 'random' or 'constant', got {dt_init!r}")
        bias = self.dt_proj.bias
        uniform = torch.rand(self.d_inner, device=bias.device, dtype=bias.dtype)
        log_dt = uniform * (math.log(dt_max) - math.log(dt_min))
        dt = torch.exp(log_dt + math.log(dt_min)).clamp(min=dt_init_floor)
        with torch.no_grad():
            bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus
        bias._no_reinit = True

    def allocate_state(self, batch_size: int) -> MambaState:
        """The zero state a stream starts from, on the parameters' device (``ssm`` in float32).

        Parameters
        ----------
        batch_size : int
            Streams run together.

        Returns
        -------
        MambaState
            ``conv`` (batch, d_inner, d_conv - 1), ``ssm`` (batch, d_inner, d_state).
        """
        weight = self.conv1d.weight
        return MambaState(conv=weight.new_zeros(batch_size, self.d_inner, self.d_conv - 1),
                          ssm=torch.zeros(batch_size, self.d_inner, self.d_state, device=weight.device))

    def forward(self, hidden_states: torch.Tensor, state: MambaState | None = None) -> torch.Tensor:
        """Mix along time.

        Parameters
        ----------
        hidden_states : torch.Tensor
            (batch, len, d_model).
        state : MambaState, optional
            Continue a stream (see :meth:`allocate_state`): the output for a sequence cut into chunks,
            each run with the same state object, equals that of the whole sequence. Updated in place.

        Returns
        -------
        torch.Tensor
            (batch, len, d_model).
        """
        if hidden_states.dim() != 3 or hidden_states.shape[-1] != self.d_model:
            raise ValueError(
                f"Mamba: expected input (batch, len, d_model={self.d_model}), got {tuple(hidden_states.shape)}"
            )
        return mamba_mixer(hidden_states, self.mixer_weights(), backend=self.backend, fused=self.use_fast_path,
                           state=state)

    def mixer_weights(self) -> MixerWeights:
        """The tensors :func:`sepmamba_sb.ops.mamba_mixer` takes (``A = -exp(A_log)``; ``A``, ``D`` and the
        step-size bias in float32)."""
        return MixerWeights(
            in_proj_weight=self.in_proj.weight, in_proj_bias=self.in_proj.bias,
            conv1d_weight=self.conv1d.weight, conv1d_bias=self.conv1d.bias,
            x_proj_weight=self.x_proj.weight, delta_proj_weight=self.dt_proj.weight,
            out_proj_weight=self.out_proj.weight, out_proj_bias=self.out_proj.bias,
            A=-torch.exp(self.A_log.float()), D=self.D.float(), delta_bias=self.dt_proj.bias.float(),
        )
