"""Separate recordings with a trained SepMamba from a SpeechBrain hub folder.

    from sepmamba_sb.inference import SepMambaSeparation
    model = SepMambaSeparation.from_hparams(source="path/to/exported_model", savedir="pretrained")
    sources = model.separate_file("meeting.wav")        # [1, T, S] at the file's rate and length

    # causal models, live: chunk by chunk, constant memory (SpeechBrain's StreamingASR shape)
    context = model.make_streaming_context()
    for chunk in model.separate_file_streaming("meeting.wav", chunk_ms=32):
        ...                                              # [1, n, S] each, delayed by context.delay

A hub folder holds ``hyperparams.yaml`` (with a ``pretrainer``), one ``<module>.ckpt`` per module,
``custom_interface.py``, a model card ``README.md`` and ``test_mixture.wav``; :mod:`sepmamba_sb.hub`
writes, checks and uploads them. Both model forms work: the paper's direct ``sepmamba`` module, and the
``encoder``/``masknet``/``decoder`` triple (which SpeechBrain's own ``SepformerSeparation`` also loads).

Output level: a separator trained on SI-SNR gives each estimate an arbitrary scale. The file methods
(``separate_file``, ``separate_file_as_stream``) set it, and here only (``level``, :data:`LEVELS`):

- ``"mixture"`` (default): each source at the level it has in the mixture (:func:`fit_to_mixture`):
  silence stays silent, an absent speaker's output stays near silent, a quiet speaker stays quiet,
  and the sources sum to about the mixture;
- ``"peak"``: that, then each source scaled to a peak of 0.9, as SpeechBrain's
  ``SepformerSeparation.separate_file`` does (a silent source stays silent);
- ``"raw"``: the model's own output scale (for long files, each chunk's).

``separate_batch`` and ``separate_chunk`` return the model's raw estimates (SpeechBrain's contract).
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torchaudio
from speechbrain.inference.interfaces import Pretrained
from speechbrain.utils.data_utils import split_path
from speechbrain.utils.fetching import fetch
from tqdm import tqdm

from sepmamba_sb.audio import PEAK, audio_info, read_audio, read_blocks
from sepmamba_sb.lobes import as_separator, fit_length
from sepmamba_sb.lobes.streaming import StreamingContext
from sepmamba_sb.resampling import StreamResampler

logger = logging.getLogger(__name__)

LEVELS = ("mixture", "peak", "raw")


def fit_to_mixture(est: torch.Tensor, mix: torch.Tensor, ridge: float = 1e-6) -> torch.Tensor:
    """Give each estimated source the level it has in the mixture.

    Per mixture, the gains ``g`` minimising ``|| mix - sum_s g_s est_s ||^2`` (least squares, lightly
    ridge-regularised) multiply the estimates. Each output is then the part of the mixture that its
    estimate explains: a silent mixture gives silent sources, an estimate unrelated to the mixture
    (an absent speaker) comes out near silent, and the sources sum to the mixture as closely as the
    estimates allow. Computed in float64.

    Parameters
    ----------
    est : torch.Tensor
        Estimates [B, T, S] at any scale.
    mix : torch.Tensor
        Mixtures [B, T].
    ridge : float
        Added to the Gram matrix's diagonal, relative to its mean diagonal (numerical safety when two
        estimates are nearly collinear).

    Returns
    -------
    torch.Tensor
        [B, T, S], ``est``'s dtype and device.
    """
    if est.dim() != 3 or mix.shape != est.shape[:2]:
        raise ValueError(f"fit_to_mixture: est must be [B, T, S] and mix [B, T], got {tuple(est.shape)} and "
                         f"{tuple(mix.shape)}")
    e, x = est.double(), mix.to(est.device, torch.float64)
    gram = e.transpose(1, 2) @ e  # [B, S, S]
    scale = gram.diagonal(dim1=1, dim2=2).mean(-1).clamp_min(1e-30)  # all-zero estimates: zero gains
    eye = torch.eye(est.shape[-1], dtype=torch.float64, device=est.device)
    gains = torch.linalg.solve(gram + ridge * scale[:, None, None] * eye, e.transpose(1, 2) @ x.unsqueeze(-1))
    return (e * gains.transpose(1, 2)).to(est.dtype)


def peak_normalise(sources: torch.Tensor, peak: float = PEAK) -> torch.Tensor:
    """Each source [..., T, S] scaled to a largest absolute sample of ``peak``; a silent one stays silent.

    Example
    -------
    >>> peak_normalise(torch.tensor([[0.1, 0.0], [-0.3, 0.0]]))
    tensor([[ 0.3000,  0.0000],
            [-0.9000,  0.0000]])
    """
    return peak * sources / sources.abs().amax(dim=-2, keepdim=True).clamp_min(1e-8)


def _check_level(level: str) -> None:
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")


@dataclass(frozen=True)
class StreamReport:
    """How a file separated as a stream fared (:meth:`SepMambaSeparation.separate_file_as_stream`).

    Attributes
    ----------
    rtf : float
        Real-time factor: compute time / audio time (under 1: faster than real time).
    latency_ms : float
        One chunk plus the model's look-ahead (and, for a file at another rate, the two resamplers'), in
        ms (compute time adds to it).
    lookahead : int
        The model's look-ahead in samples at its rate.
    """

    rtf: float
    latency_ms: float
    lookahead: int


def _align(tail: torch.Tensor, est: torch.Tensor, shared: int) -> torch.Tensor:
    """``est`` [n, S] with its sources reordered to match ``tail`` [>= shared, S] on the first
    ``shared`` samples (largest summed correlation)."""

    def score(perm):
        return sum(float(torch.dot(tail[:shared, s], est[:shared, p])) for s, p in enumerate(perm))

    best = max(itertools.permutations(range(est.shape[-1])), key=score)
    return est[:, list(best)]


def separate_in_chunks(separate_batch, mix: torch.Tensor, chunk: int, overlap: int,
                       progress: bool = True) -> torch.Tensor:
    """Separate a long mixture [T] chunk by chunk; memory is that of one chunk plus the output.

    Consecutive chunks overlap by ``overlap`` samples: each chunk's sources are reordered to match
    the previous chunk on the overlap (the separator's output order is arbitrary), then cross-faded
    linearly into it.

    Returns
    -------
    torch.Tensor
        [T, S] on the CPU.
    """
    length = mix.shape[-1]
    if chunk <= overlap:
        raise ValueError(f"chunk ({chunk} samples) must be longer than overlap ({overlap} samples)")
    if length <= chunk:
        return separate_batch(mix[None])[0].cpu()
    hop = chunk - overlap
    starts = list(range(0, length - overlap, hop))
    out, tail = None, None
    for start in tqdm(starts, desc="separating", unit="chunk", disable=not progress):
        end = min(start + chunk, length)
        est = separate_batch(mix[None, start:end])[0].cpu()
        if out is None:
            out = torch.zeros(length, est.shape[-1])
            out[start:end] = est
        else:
            shared = min(tail.shape[0], est.shape[0])
            est = _align(tail, est, shared)
            fade = torch.linspace(0.0, 1.0, shared + 2)[1:-1, None]
            out[start:start + shared] = out[start:start + shared] * (1 - fade) + est[:shared] * fade
            out[start + shared:end] = est[shared:]
        tail = est[hop:]
        if end == length:
            break
    return out


class SepMambaSeparation(Pretrained):
    """A trained separator from a hub folder: ``from_hparams(source=<folder, hub id or shipped model name>)``.

    The folder's ``hyperparams.yaml`` must define ``sample_rate``, ``num_spks``, ``modules`` (either
    ``sepmamba`` or ``encoder``/``masknet``/``decoder``) and a ``pretrainer`` loading them;
    :func:`sepmamba_sb.hub.export` writes such folders. Long inputs are separated in chunks of ``chunk_seconds``
    overlapping by ``overlap_seconds`` (yaml keys of the same names override the defaults).
    """

    HPARAMS_NEEDED = ["sample_rate", "num_spks"]
    MODULES_NEEDED = []  # one of the two forms, checked by as_separator

    @classmethod
    def from_hparams(cls, source, *args, savedir=None, precision=None, **kwargs):
        """SpeechBrain's ``Pretrained.from_hparams``; ``source`` may also be the name of a model that
        ships with the package (``python -m sepmamba_sb.pretrained`` lists them), loaded offline from
        its folder (which is then also the ``savedir``, unless one is given).

        ``precision`` (``"fp32"``, ``"bf16"`` or ``"int8"``; CPU only) converts the loaded separator with
        :func:`sepmamba_sb.precision.to_precision`; ``None`` keeps the folder's own (fp32, or the
        precision it was exported in: ``python -m sepmamba_sb.hub export --precision``).
        """
        from sepmamba_sb.precision import check_precision, precision_of, to_precision
        from sepmamba_sb.pretrained import resolve

        if precision is not None:
            check_precision(precision)
        folder = resolve(source)
        if folder != str(source) and savedir is None:
            savedir = folder
        model = super().from_hparams(folder, *args, savedir=savedir, **kwargs)
        stored = precision_of(model.separator)
        if precision is not None and precision != stored:
            if stored != "fp32":
                raise ValueError(f"precision={precision!r}: {source} was exported in {stored} and holds no "
                                 "float32 weights; load it with precision=None or export the run again")
            to_precision(model.separator, precision)
        return model

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.separator = as_separator(self.mods, self.hparams.num_spks)

    def separate_batch(self, mix: torch.Tensor) -> torch.Tensor:
        """Separate mixtures at the model's rate, as the model outputs them (SpeechBrain's contract).

        Parameters
        ----------
        mix : torch.Tensor
            [B, T].

        Returns
        -------
        torch.Tensor
            [B, T, S] on the model's device, at the model's arbitrary scale (see :func:`fit_to_mixture`).
        """
        mix = mix.to(self.device, torch.float32)
        with torch.no_grad():
            return self.separator(mix)

    def _separate_at_mixture_level(self, mix: torch.Tensor) -> torch.Tensor:
        return fit_to_mixture(self.separate_batch(mix), mix.to(self.device, torch.float32))

    def make_streaming_context(self, batch_size: int = 1) -> StreamingContext:
        """Start separating ``batch_size`` live streams with a causal model (see :meth:`separate_chunk`).

        Returns
        -------
        StreamingContext
            Its ``delay`` is the model's look-ahead in samples at ``sample_rate`` (0 when strictly causal).

        Raises
        ------
        ValueError
            When the model cannot stream (bidirectional, or not SepMamba's modules), saying why.
        """
        if not hasattr(self.separator, "make_streaming_context"):
            raise ValueError(f"{type(self.separator).__name__} cannot stream: only SepMamba models can")
        try:
            return self.separator.make_streaming_context(batch_size)
        except ValueError as exc:
            raise ValueError(f"this model cannot stream: {exc}") from exc

    def separate_chunk(self, context: StreamingContext, chunk: torch.Tensor) -> torch.Tensor:
        """Separate the next chunk of each stream (SpeechBrain's ``StreamingASR.transcribe_chunk`` shape).

        Parameters
        ----------
        context : StreamingContext
            From :meth:`make_streaming_context`; updated in place.
        chunk : torch.Tensor
            [B, n] (or [n] for one stream) samples at the model's rate, any n >= 1.

        Returns
        -------
        torch.Tensor
            [B, n, S] on the model's device, at the model's scale: the offline estimates delayed by
            ``context.delay`` samples.
        """
        if isinstance(chunk, torch.Tensor) and chunk.dim() == 1:
            chunk = chunk.unsqueeze(0)
        if isinstance(chunk, torch.Tensor) and chunk.is_floating_point():
            chunk = chunk.to(self.device, torch.float32)
        with torch.no_grad():
            return self.separator.forward_streaming(chunk, context)

    def separate_file_streaming(self, path: str | Path, chunk_ms: float = 32.0,
                                context: StreamingContext | None = None) -> Iterator[torch.Tensor]:
        """Separate a file as a live stream: read, separate and yield it chunk by chunk, in constant memory.

        At the model's sample rate, after the last chunk ``context.delay`` zero samples are fed so that
        the whole file comes out: the chunks hold ``delay + T`` samples, the first ``delay`` of them the
        model's look-ahead (zeros). At another rate the stream is resampled to the model's rate and its
        sources back, chunk by chunk (:class:`sepmamba_sb.resampling.StreamResampler`, equal to resampling
        the whole file): the chunks are then at the file's rate, aligned with the file (the look-ahead
        dropped) and exactly ``T`` samples in all.

        Parameters
        ----------
        path : str or Path
            A local file, or a hub/URL path as :meth:`separate_file` takes.
        chunk_ms : float
            Chunk length in milliseconds of the file (at least one sample).
        context : StreamingContext, optional
            A fresh context from :meth:`make_streaming_context` (to read its ``delay``); made here if None.

        Returns
        -------
        Iterator of torch.Tensor
            Chunks [1, n, S] on the CPU, at the model's scale (the file, rate and model are checked before
            the first one).
        """
        path = self._local_file(path)
        rate = audio_info(path).samplerate
        chunk = round(chunk_ms * rate / 1000)
        if chunk < 1:
            raise ValueError(f"chunk_ms={chunk_ms} is shorter than one sample at {rate} Hz")
        context = context or self.make_streaming_context(1)
        if context.batch_size != 1:
            raise ValueError(f"separate_file_streaming: the context is for {context.batch_size} streams, a file is one")
        if rate != self.hparams.sample_rate:
            return self._stream_resampled(path, rate, chunk, context)
        return self._stream_file(path, chunk, context)  # checked above, before the first chunk is asked for

    def _stream_file(self, path: Path, chunk: int, context: StreamingContext) -> Iterator[torch.Tensor]:
        for block in read_blocks(path, chunk):
            yield self.separate_chunk(context, block).cpu()
        for start in range(0, context.delay, chunk):
            yield self.separate_chunk(context, torch.zeros(min(chunk, context.delay - start))).cpu()

    def _stream_resampled(self, path: Path, rate: int, chunk: int, context: StreamingContext) -> Iterator[torch.Tensor]:
        """A file at another rate: down to the model's rate, separated, the look-ahead dropped, back up."""
        model_rate, speakers = self.hparams.sample_rate, self.hparams.num_spks
        down, up = StreamResampler(rate, model_rate, 1), StreamResampler(model_rate, rate, speakers)
        remaining, skip = audio_info(path).frames, context.delay

        def separated(samples: torch.Tensor) -> torch.Tensor:  # [1, n] at the model's rate -> [n', S] at rate
            nonlocal skip
            if samples.shape[-1] == 0:
                return up(samples.new_zeros(speakers, 0)).t()
            est = self.separate_chunk(context, samples).cpu()[0]
            dropped = min(skip, est.shape[0])
            skip -= dropped
            return up(est[dropped:].t()).t()

        def ending() -> Iterator[torch.Tensor]:  # the rest of each stage, the model's look-ahead fed as zeros
            yield separated(down.flush())
            for start in range(0, context.delay, chunk):
                yield separated(torch.zeros(1, min(chunk, context.delay - start)))
            yield up.flush().t()

        for part in itertools.chain((separated(down(block[None])) for block in read_blocks(path, chunk)), ending()):
            part = part[:remaining]
            remaining -= part.shape[0]
            if part.shape[0]:
                yield part[None]

    def separate_file_as_stream(self, path: str | Path, chunk_ms: float = 32.0, level: str = "mixture",
                                progress: bool = True) -> tuple[torch.Tensor, StreamReport]:
        """Separate a whole file as a live stream would, chunk by chunk in constant model memory, and
        measure how fast (:meth:`separate_file_streaming`, then the look-ahead removed).

        For a strictly causal model and a file shorter than ``chunk_seconds`` (one offline pass) the
        sources equal :meth:`separate_file`'s up to float round-off.

        Parameters
        ----------
        path : str or Path
            A local file, or a hub/URL path (at another rate than the model's, resampled as a stream).
        chunk_ms : float
            Chunk length in milliseconds.
        level : {"mixture", "peak", "raw"}
            The sources' output level (see the module docstring), set over the whole file.
        progress : bool
            A progress bar over the file's seconds.

        Returns
        -------
        (torch.Tensor, StreamReport)
            The sources [1, T, S] on the CPU, aligned with the file, and the real-time factor and latency.
        """
        _check_level(level)
        path = self._local_file(path)
        context = self.make_streaming_context()
        chunks = self.separate_file_streaming(path, chunk_ms, context)  # checks the file before separating
        rate, model_rate = audio_info(path).samplerate, self.hparams.sample_rate
        duration, started, parts = audio_info(path).frames / rate, time.perf_counter(), []
        with tqdm(total=round(duration, 2), desc=f"streaming {path.name}", unit="s", disable=not progress) as bar:
            for chunk in chunks:
                parts.append(chunk[0])
                bar.update(min(chunk.shape[1] / rate, bar.total - bar.n))
        seconds = time.perf_counter() - started
        est = torch.cat(parts)[context.delay if rate == model_rate else 0:][None]  # resampled: aligned already
        if level != "raw":
            est = fit_to_mixture(est, read_audio(path)[0][None])
        if level == "peak":
            est = peak_normalise(est)
        resampling = 0.0 if rate == model_rate else (StreamResampler(rate, model_rate).lookahead_seconds
                                                     + StreamResampler(model_rate, rate).lookahead_seconds)
        latency_ms = chunk_ms + 1000 * (context.delay / model_rate + resampling)
        return est, StreamReport(rtf=seconds * rate / est.shape[1], latency_ms=latency_ms, lookahead=context.delay)

    def _local_file(self, path: str | Path, savedir: str | Path | None = None) -> Path:
        """``path`` itself, or what SpeechBrain's ``separate_file`` fetches for a hub or web path."""
        if Path(path).is_file():
            return Path(path)
        source, name = split_path(str(path))
        try:
            return Path(fetch(name, source=source, savedir=savedir))
        except Exception as exc:  # hub, network and URL errors alike: the file is not to be had
            raise ValueError(f"audio file {path} does not exist and could not be fetched "
                             f"({type(exc).__name__}: {exc})") from exc

    def separate_file(self, path: str | Path, savedir: str | Path | None = None, chunk_seconds: float | None = None,
                      overlap_seconds: float | None = None, progress: bool = True,
                      level: str = "mixture") -> torch.Tensor:
        """Separate an audio file: averaged to mono, resampled to the model's rate and the sources
        resampled back, so they have the file's rate and exactly its length, at the output ``level``
        (by default each source at its level in the mixture: :func:`fit_to_mixture`, chunk by chunk for
        long files).

        Parameters
        ----------
        path : str or Path
            A local file, or what SpeechBrain's ``separate_file`` takes: ``<hub id or URL>/<file>``,
            fetched into ``savedir``.
        chunk_seconds, overlap_seconds : float, optional
            Chunking of long files (defaults: the yaml's, else 30 s and 2 s).
        progress : bool
            A progress bar over the chunks.
        level : {"mixture", "peak", "raw"}
            The sources' output level (see the module docstring).

        Returns
        -------
        torch.Tensor
            [1, T, S] on the CPU, at the file's sample rate.
        """
        _check_level(level)
        path = self._local_file(path, savedir)
        audio, rate = read_audio(path)
        model_rate = self.hparams.sample_rate
        mix = audio
        if rate != model_rate:
            logger.info("resampling %s from %d Hz to the model's %d Hz", path, rate, model_rate)
            mix = torchaudio.functional.resample(audio, rate, model_rate)
        chunk = chunk_seconds or getattr(self.hparams, "chunk_seconds", 30.0)
        overlap = overlap_seconds or getattr(self.hparams, "overlap_seconds", 2.0)
        separate = self.separate_batch if level == "raw" else self._separate_at_mixture_level
        est = separate_in_chunks(separate, mix, int(chunk * model_rate), int(overlap * model_rate), progress)
        if rate != model_rate:
            est = torchaudio.functional.resample(est.t(), model_rate, rate).t()
        est = fit_length(est.t(), audio.shape[-1]).t().unsqueeze(0)
        return peak_normalise(est) if level == "peak" else est
