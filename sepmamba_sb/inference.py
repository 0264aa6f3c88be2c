"""Separate recordings with a trained SepMamba, and export trained models as SpeechBrain hub folders.

    from sepmamba_sb.inference import SepMambaSeparation
    model = SepMambaSeparation.from_hparams(source="path/to/exported_model", savedir="pretrained")
    sources = model.separate_file("meeting.wav")        # [1, T, S] at the file's rate and length

    # causal models, live: chunk by chunk, constant memory (SpeechBrain's StreamingASR shape)
    context = model.make_streaming_context()
    for chunk in model.separate_file_streaming("meeting.wav", chunk_ms=32):
        ...                                              # [1, n, S] each, delayed by context.delay

A hub folder holds ``hyperparams.yaml`` (with a ``pretrainer``), one ``<module>.ckpt`` per module,
a model card ``README.md`` and ``test_mixture.wav``; :func:`export` writes one from a training run.
Both model forms work: the paper's direct ``sepmamba`` module, and the ``encoder``/``masknet``/
``decoder`` triple (which SpeechBrain's own ``SepformerSeparation`` also loads).

Output level: a separator trained on SI-SNR gives each estimate an arbitrary scale. ``separate_file``
gives each source the level it has in the mixture (:func:`fit_to_mixture`): silence stays silent, an
absent speaker's output stays near silent, a quiet speaker stays quiet, and the sources sum to about
the mixture.
"""

from __future__ import annotations

import csv
import itertools
import json
import logging
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import torch
import torchaudio
from speechbrain.inference.interfaces import Pretrained
from speechbrain.utils.data_utils import split_path
from speechbrain.utils.fetching import fetch
from tqdm import tqdm

from sepmamba_sb.audio import audio_info, read_audio, read_blocks
from sepmamba_sb.lobes import as_separator, fit_length, model_form
from sepmamba_sb.lobes.streaming import StreamingContext

logger = logging.getLogger(__name__)


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
    """A trained separator from a hub folder: ``from_hparams(source=<folder or hub id>)``.

    The folder's ``hyperparams.yaml`` must define ``sample_rate``, ``num_spks``, ``modules`` (either
    ``sepmamba`` or ``encoder``/``masknet``/``decoder``) and a ``pretrainer`` loading them;
    :func:`export` writes such folders. Long inputs are separated in chunks of ``chunk_seconds``
    overlapping by ``overlap_seconds`` (yaml keys of the same names override the defaults).
    """

    HPARAMS_NEEDED = ["sample_rate", "num_spks"]
    MODULES_NEEDED = []  # one of the two forms, checked by as_separator

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

        The file must be at the model's sample rate (a stream is not resampled here). After the last
        chunk, ``context.delay`` zero samples are fed so that the whole file comes out: the chunks hold
        ``delay + T`` samples, the first ``delay`` of them the model's look-ahead (zeros).

        Parameters
        ----------
        path : str or Path
            A local file, or a hub/URL path as :meth:`separate_file` takes.
        chunk_ms : float
            Chunk length in milliseconds (at least one sample).
        context : StreamingContext, optional
            A fresh context from :meth:`make_streaming_context` (to read its ``delay``); made here if None.

        Returns
        -------
        Iterator of torch.Tensor
            Chunks [1, n, S] on the CPU, at the model's scale (the file, rate and model are checked before
            the first one).
        """
        path = self._local_file(path)
        rate, model_rate = audio_info(path).samplerate, self.hparams.sample_rate
        if rate != model_rate:
            raise ValueError(f"audio file {path} is at {rate} Hz; streaming needs the model's {model_rate} Hz "
                             f"(resample it first, or use separate_file)")
        chunk = round(chunk_ms * model_rate / 1000)
        if chunk < 1:
            raise ValueError(f"chunk_ms={chunk_ms} is shorter than one sample at {model_rate} Hz")
        context = context or self.make_streaming_context(1)
        if context.batch_size != 1:
            raise ValueError(f"separate_file_streaming: the context is for {context.batch_size} streams, a file is one")
        return self._stream_file(path, chunk, context)  # checked above, before the first chunk is asked for

    def _stream_file(self, path: Path, chunk: int, context: StreamingContext) -> Iterator[torch.Tensor]:
        for block in read_blocks(path, chunk):
            yield self.separate_chunk(context, block).cpu()
        for start in range(0, context.delay, chunk):
            yield self.separate_chunk(context, torch.zeros(min(chunk, context.delay - start))).cpu()

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
                      overlap_seconds: float | None = None, progress: bool = True) -> torch.Tensor:
        """Separate an audio file: averaged to mono, resampled to the model's rate and the sources
        resampled back, so they have the file's rate and exactly its length, and each source at its
        level in the mixture (:func:`fit_to_mixture`, chunk by chunk for long files).

        Parameters
        ----------
        path : str or Path
            A local file, or what SpeechBrain's ``separate_file`` takes: ``<hub id or URL>/<file>``,
            fetched into ``savedir``.
        chunk_seconds, overlap_seconds : float, optional
            Chunking of long files (defaults: the yaml's, else 30 s and 2 s).
        progress : bool
            A progress bar over the chunks.

        Returns
        -------
        torch.Tensor
            [1, T, S] on the CPU, at the file's sample rate.
        """
        path = self._local_file(path, savedir)
        audio, rate = read_audio(path)
        model_rate = self.hparams.sample_rate
        mix = audio
        if rate != model_rate:
            logger.info("resampling %s from %d Hz to the model's %d Hz", path, rate, model_rate)
            mix = torchaudio.functional.resample(audio, rate, model_rate)
        chunk = chunk_seconds or getattr(self.hparams, "chunk_seconds", 30.0)
        overlap = overlap_seconds or getattr(self.hparams, "overlap_seconds", 2.0)
        est = separate_in_chunks(self._separate_at_mixture_level, mix, int(chunk * model_rate),
                                 int(overlap * model_rate), progress)
        if rate != model_rate:
            est = torchaudio.functional.resample(est.t(), model_rate, rate).t()
        return fit_length(est.t(), audio.shape[-1]).t().unsqueeze(0)


def _module_yaml(name: str, module: torch.nn.Module) -> str:
    """``name: !new:<class>`` with the module's recorded constructor arguments."""
    if not hasattr(module, "config"):
        raise TypeError(f"module {name} ({type(module).__name__}) does not record its configuration; "
                        "only sepmamba_sb.lobes modules can be exported")
    cls = type(module)  # values as JSON, which YAML reads back as written (null, true, lists, strings)
    return "\n".join([f"{name}: !new:{cls.__module__}.{cls.__name__}",
                      *(f"    {k}: {json.dumps(v)}" for k, v in module.config.items())])


def _hub_yaml(modules: dict, sample_rate: int, num_spks: int, chunk_seconds: float, overlap_seconds: float) -> str:
    names = list(modules)
    parts = [
        "# SepMamba separator exported by sepmamba_sb.inference.export",
        f"sample_rate: {sample_rate}",
        f"num_spks: {num_spks}",
        f"chunk_seconds: {chunk_seconds} # long files are separated in chunks of this length",
        f"overlap_seconds: {overlap_seconds}",
        "",
        *(_module_yaml(n, m) + "\n" for n, m in modules.items()),
        "modules:",
        *(f"    {n}: !ref <{n}>" for n in names),
        "",
        "pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer",
        "    loadables:",
        *(f"        {n}: !ref <{n}>" for n in names),
    ]
    return "\n".join(parts) + "\n"


def mean_test_scores(run: str | Path) -> dict | None:
    """The means (the ``avg`` row) of a recipe run's ``test_results.csv``: metric -> dB; None without one."""
    path = Path(run) / "test_results.csv"
    if not path.is_file():
        return None
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row["snt_id"] == "avg":
                return {k: float(v) for k, v in row.items() if k != "snt_id"}
    return None


def training_log(run: str | Path) -> list[dict]:
    """A recipe run's ``train_log.txt``, one dict per epoch: ``epoch``, ``minutes`` (since training
    started in the process that ran the epoch; None in logs written before it was recorded),
    ``train`` and ``valid`` (SI-SNR, dB).

    Raises
    ------
    FileNotFoundError
        When the run has no ``train_log.txt``.
    """
    path = Path(run) / "train_log.txt"
    if not path.is_file():
        raise FileNotFoundError(f"{run} has no train_log.txt")
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        epoch = re.match(r"epoch: (\d+),", line)
        train, valid = re.search(r"train si-snr: ([^,\s]+)", line), re.search(r"valid si-snr: ([^,\s]+)", line)
        if epoch and train and valid:
            minutes = re.search(r"minutes: ([^\s,]+)", line)
            rows.append({"epoch": int(epoch.group(1)), "minutes": float(minutes.group(1)) if minutes else None,
                         "train": float(train.group(1)), "valid": float(valid.group(1))})
    return rows


def load_training_run(run: str | Path) -> dict:
    """A recipe run's hparams with the checkpoint of best validation SI-SNR loaded into its modules
    (what ``train.py`` tests).

    Raises
    ------
    FileNotFoundError
        When ``run`` has no ``hyperparams.yaml`` or no checkpoint.
    """
    from hyperpyyaml import load_hyperpyyaml

    path = Path(run) / "hyperparams.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{run} is not a training run folder: {path} is missing")
    with open(path, encoding="utf-8") as f:
        hparams = load_hyperpyyaml(f)
    if hparams["checkpointer"].recover_if_possible(max_key="si-snr") is None:
        raise FileNotFoundError(f"no checkpoint in {hparams['save_folder']}")
    return hparams


def training_conditions(hparams) -> str:
    """One sentence on what a run's model was trained to separate: clean, noisy or reverberant mixtures,
    which targets, and the rooms and noise of its dynamic mixtures (a recipe's hparams; the model card's)."""
    dataset, task = hparams.get("dataset", "wsj0mix"), hparams.get("task", "clean")
    reverberant = task in ("reverberant", "noisy-reverberant")
    kind = {"clean": "clean, anechoic", "noisy": "noisy, anechoic", "reverberant": "reverberant, noise-free",
            "noisy-reverberant": "noisy and reverberant"}[task]
    text = f"Conditions: {kind} mixtures ({dataset}, task `{task}`)"
    if reverberant:
        text += ("; targets: the direct path (it separates and dereverberates)" if hparams.get("dereverberate", True)
                 else "; targets: the reverberant sources (it separates, keeping the reverberation)")
    extras = []
    rooms, noise = hparams.get("dm_rooms"), hparams.get("dm_noise")
    if hparams.get("dynamic_mixing") and rooms:
        settings = getattr(rooms, "keywords", {})
        extras.append(f"simulated rooms (RT60 {settings.get('rt60', 'default range')} s, target "
                      f"{settings.get('target', 'direct')})")
    if hparams.get("dynamic_mixing") and noise:
        extras.append(f"noise at {getattr(noise, 'keywords', {}).get('snr', 'the default')} dB SNR")
    if extras:
        text += "; dynamic mixtures with " + " and ".join(extras)
    causal = hparams.get("model_config", {}).get("causal", False)
    if not causal:
        return text + ". Non-causal model."
    return text + (". Strictly causal model (no look-ahead)." if hparams.get("strict_causal") else
                   ". Causal model (its unpadded convs look a few ms ahead).")


def _model_card(modules: dict, sample_rate: int, num_spks: int, metrics: dict | None, training: str) -> str:
    params = sum(p.numel() for m in modules.values() for p in m.parameters())
    masking = model_form(modules) == "masking"
    form = "SpeechBrain's masking form (encoder, masknet, decoder)" if masking else \
        "the paper's direct model (waveforms out)"
    lines = [
        "# SepMamba speech separator",
        "",
        f"SepMamba ([arXiv 2410.20997](https://arxiv.org/abs/2410.20997)), {form}: {params:,} parameters, "
        f"{num_spks} speakers, {sample_rate} Hz.",
        "",
        "## Architecture",
        "",
        *(f"- `{n}`: `{type(m).__name__}({', '.join(f'{k}={v!r}' for k, v in m.config.items())})`"
          for n, m in modules.items()),
        "",
        "## Training data",
        "",
        training,
        "",
        "## Results on the training recipe's test set",
        "",
    ]
    if metrics:
        lines += ["| SI-SNR | SI-SNRi | SDR | SDRi | SI-SDR | SI-SDRi |", "|---|---|---|---|---|---|",
                  "| " + " | ".join(f"{metrics[k]:.2f}" for k in ("si-snr", "si-snr_i", "sdr", "sdr_i", "si-sdr",
                                                                   "si-sdr_i")) + " |",
                  "", "Measured by the recipe's `test_results.csv` (full-length test mixtures, dB)."]
    else:
        lines.append("No test results were found beside the checkpoint.")
    lines += [
        "",
        "## Usage",
        "",
        "```python",
        "from sepmamba_sb.inference import SepMambaSeparation",
        'model = SepMambaSeparation.from_hparams(source="<this folder>", savedir="pretrained")',
        'sources = model.separate_file("test_mixture.wav")   # [1, T, S]',
        "```",
        "",
        "or `sepmamba-separate <this folder> mixture.wav --out separated/`.",
    ]
    if masking:
        lines += ["", "SpeechBrain's `speechbrain.inference.separation.SepformerSeparation.from_hparams` loads "
                  "this folder too."]
    return "\n".join(lines) + "\n"


def export(source, out_dir: str | Path, test_mixture: str | Path | None = None, chunk_seconds: float = 30.0,
           overlap_seconds: float = 2.0) -> Path:
    """Write a SpeechBrain hub folder from a training run.

    Parameters
    ----------
    source : Path or speechbrain.core.Brain
        A run's output folder (with ``hyperparams.yaml`` and ``save/CKPT+*``: the checkpoint with the
        best validation SI-SNR is loaded), or a Brain holding trained ``modules`` and ``hparams``.
    out_dir : str or Path
        Created; existing files are replaced.
    test_mixture : str or Path, optional
        Copied as ``test_mixture.wav`` (default: the first mixture of the run's test CSV).
    chunk_seconds, overlap_seconds : float
        Written to the yaml for long-file separation.

    Returns
    -------
    Path
        ``out_dir``.
    """
    from speechbrain.dataio.dataio import load_data_csv

    if isinstance(source, (str, Path)):
        run = Path(source)
        hparams = load_training_run(run)
        modules = dict(hparams["modules"])
    else:
        hparams, modules = vars(source.hparams), dict(source.modules)
        run = Path(hparams["output_folder"])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, module in modules.items():
        torch.save(module.state_dict(), out / f"{name}.ckpt")
    sample_rate, num_spks = hparams["sample_rate"], hparams["num_spks"]
    (out / "hyperparams.yaml").write_text(_hub_yaml(modules, sample_rate, num_spks, chunk_seconds, overlap_seconds))
    if test_mixture is None and hparams.get("test_data"):
        rows = load_data_csv(hparams["test_data"], replacements={"data_root": hparams["data_folder"]})
        test_mixture = next(iter(rows.values()))["mix_wav"] if rows else None
    if test_mixture is not None:
        shutil.copy(test_mixture, out / "test_mixture.wav")
    training = (f"Trained with the `{hparams.get('experiment_name', '?')}` recipe on `{hparams.get('data_folder')}`"
                + (f", dynamic mixing from `{hparams.get('base_folder_dm')}`." if hparams.get("dynamic_mixing")
                   else ".") + "\n\n" + training_conditions(hparams))
    (out / "README.md").write_text(_model_card(modules, sample_rate, num_spks, mean_test_scores(run), training))
    logger.info("exported %s to %s", ", ".join(modules), out)
    return out
