#!/usr/bin/env python3
"""Train and evaluate SepMamba on wsj0-2mix / wsj0-3mix and their noisy and reverberant versions
(WHAM!, WHAMR!), the SpeechBrain way. The MiniMix and WHAMandWHAMR recipes link to this file.

    python train.py hparams/sepmamba.yaml --data_folder /data/wsj0-mix/2speakers \\
        --base_folder_dm /data/wsj0/si_tr_s

The yaml's ``dataset`` (default ``wsj0mix``), ``task`` and ``dereverberate`` tell prepare_data.py which
folders hold the mixtures and the targets; ``dm_rooms`` and ``dm_noise`` add rooms and noise to the
dynamic mixtures (``sepmamba_sb.rooms``, ``sepmamba_sb.noise``).

The yaml chooses the model form: a ``sepmamba`` module (the paper's model, waveforms out) or
``encoder`` / ``masknet`` / ``decoder`` modules (SpeechBrain's masking contract). Training uses
permutation-invariant SI-SNR (logged as SI-SNR in dB, higher is better); the checkpoint kept as
best is the one with the best VALIDATION (cv) SI-SNR; the test set (tt) is evaluated at full
length, utterance by utterance, into ``test_results.csv``
(SDR and SDRi from mir_eval's bss_eval_sources, SI-SNR/SI-SNRi, and SI-SDR/SI-SDRi without mean
removal as the paper reports). Runs resume from their last checkpoint when started again.
Multi-GPU: ``torchrun --nproc_per_node=N train.py hparams/sepmamba.yaml ...``.
"""

from __future__ import annotations

import csv
import logging
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import speechbrain as sb
import torch
from hyperpyyaml import load_hyperpyyaml
from mir_eval.separation import bss_eval_sources
from speechbrain.dataio import audio_io
from speechbrain.nnet.losses import PitWrapper, cal_si_snr
from speechbrain.nnet.schedulers import ReduceLROnPlateau, update_learning_rate
from speechbrain.utils.distributed import run_on_main
from tqdm import tqdm

from sepmamba_sb.lobes import as_separator

logger = logging.getLogger(__name__)


def si_sdr(estimate: torch.Tensor, target: torch.Tensor, zero_mean: bool) -> torch.Tensor:
    """Scale-invariant SDR in dB over time, [..., T] -> [...]; ``zero_mean`` gives SI-SNR."""
    if zero_mean:
        estimate = estimate - estimate.mean(-1, keepdim=True)
        target = target - target.mean(-1, keepdim=True)
    eps = torch.finfo(estimate.dtype).eps
    scale = (estimate * target).sum(-1, keepdim=True) / (target.square().sum(-1, keepdim=True) + eps)
    projection = scale * target
    noise = estimate - projection
    return 10 * torch.log10((projection.square().sum(-1) + eps) / (noise.square().sum(-1) + eps))


def align_estimates(est: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Estimates [B, T, S] reordered so that source s goes with target s, as PIT SI-SNR (the training
    loss, ``get_si_snr_with_pitwrapper``) pairs them."""
    _, perms = PitWrapper(cal_si_snr)(targets, est)  # estimate i goes with target perms[b][i]
    order = [torch.argsort(torch.tensor(p)) for p in perms]
    return torch.stack([e[:, o] for e, o in zip(est, order, strict=True)])


class Separation(sb.Brain):
    """Permutation-invariant SI-SNR training of a separator given as ``sepmamba`` or as the
    ``encoder``/``masknet``/``decoder`` triple."""

    @property
    def separator(self):
        """The modules as one separator, [B, T] -> [B, T, S] (built on use: DDP may have wrapped them)."""
        return as_separator(self.modules, self.hparams.num_spks)

    def compute_forward(self, mix, targets, stage):
        """mix: [B, T]; targets: [B, T, S]. Returns (estimates, targets), both [B, T', S]."""
        mix, targets = mix.to(self.device), targets.to(self.device)
        if stage == sb.Stage.TRAIN:
            with torch.no_grad():
                if self.hparams.use_speedperturb:
                    targets = self.speed_perturb_sources(targets)
                    mix = targets.sum(-1)
                if self.hparams.limit_training_signal_len:
                    mix, targets = self.crop(mix, targets)
        return self.separator(mix), targets

    def speed_perturb_sources(self, targets):
        """Each source at its own random speed (SpeechBrain's SpeedPerturb), cut to the shortest."""
        sources = [self.hparams.speed_perturb(targets[..., i]) for i in range(targets.shape[-1])]
        length = min(s.shape[-1] for s in sources)
        return torch.stack([s[:, :length] for s in sources], dim=-1)

    def crop(self, mix, targets):
        """One random window of ``training_signal_len`` samples for the whole batch."""
        length = self.hparams.training_signal_len
        start = int(torch.randint(0, 1 + max(0, mix.shape[1] - length), (1,)))
        return mix[:, start:start + length], targets[:, start:start + length]

    def compute_objectives(self, predictions, targets):
        """Negative PIT SI-SNR per example, [B]."""
        return self.hparams.loss(targets, predictions)

    @staticmethod
    def batch_signals(batch, num_spks):
        """(mix [B, T], targets [B, T, S]) from a PaddedBatch."""
        mix, _ = batch.mix_sig
        targets = torch.stack([getattr(batch, f"s{i + 1}_sig")[0] for i in range(num_spks)], dim=-1)
        return mix, targets

    def fit_batch(self, batch):
        """One step; examples already better than ``threshold`` and non-finite or too large losses
        are left out (the latter counted), gradients clipped to ``clip_grad_norm``."""
        mix, targets = self.batch_signals(batch, self.hparams.num_spks)
        with self.training_ctx:
            predictions, targets = self.compute_forward(mix, targets, sb.Stage.TRAIN)
            loss = self.compute_objectives(predictions, targets)
            if self.hparams.threshold_byloss:
                loss = loss[loss > self.hparams.threshold]  # also drops NaN
            loss = loss.mean() if loss.numel() > 0 else loss
        if loss.numel() > 0 and torch.isfinite(loss) and loss < self.hparams.loss_upper_lim:
            self.scaler.scale(loss).backward()
            if self.hparams.clip_grad_norm >= 0:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(self.modules.parameters(), self.hparams.clip_grad_norm)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.skipped_batches += 1
            logger.info("loss empty, non-finite or above loss_upper_lim: batch skipped (%d this epoch)",
                        self.skipped_batches)
            loss = torch.tensor(0.0, device=self.device)
        self.optimizer.zero_grad(set_to_none=True)
        return loss.detach().cpu()

    def evaluate_batch(self, batch, stage):
        mix, targets = self.batch_signals(batch, self.hparams.num_spks)
        with torch.no_grad():
            predictions, targets = self.compute_forward(mix, targets, stage)
            loss = self.compute_objectives(predictions, targets)
        if stage == sb.Stage.TEST and self.audio_saved < self.hparams.n_audio_to_save:
            self.save_audio(batch.id[0], mix[0], targets[0], predictions[0])
            self.audio_saved += 1
        return loss.mean().detach()

    def on_stage_start(self, stage, epoch=None):
        if stage == sb.Stage.TRAIN:
            self.skipped_batches = 0
            if hasattr(self.train_set, "set_epoch"):
                self.train_set.set_epoch(epoch)  # fresh dynamic mixtures each epoch
        self.audio_saved = 0

    def on_stage_end(self, stage, stage_loss, epoch=None):
        stats = {"si-snr": -stage_loss}  # the loss is the negative SI-SNR (dB)
        if stage == sb.Stage.TRAIN:
            self.train_stats = {**stats, "skipped_batches": self.skipped_batches}
        elif stage == sb.Stage.VALID:
            self.stop_if_out_of_time(epoch)
            current_lr = self.optimizer.param_groups[0]["lr"]
            if isinstance(self.hparams.lr_scheduler, ReduceLROnPlateau):
                current_lr, next_lr = self.hparams.lr_scheduler([self.optimizer], epoch, stage_loss)
                update_learning_rate(self.optimizer, next_lr)
            minutes = (time.monotonic() - self.fit_started) / 60  # training and validation so far, this process
            self.hparams.train_logger.log_stats(
                stats_meta={"epoch": epoch, "lr": current_lr, "minutes": round(minutes, 2)},
                train_stats=self.train_stats, valid_stats=stats,
            )
            # model selection on the VALIDATION set (the authors' code selected on the test set)
            self.checkpointer.save_and_keep_only(meta=stats, max_keys=["si-snr"])
        else:
            self.hparams.train_logger.log_stats(
                stats_meta={"epoch loaded": self.hparams.epoch_counter.current}, test_stats=stats
            )

    def stop_if_out_of_time(self, epoch):
        """With ``time_budget_minutes`` in the yaml, make this epoch the last once the budget is
        spent (counted from the start of this process's training)."""
        budget = getattr(self.hparams, "time_budget_minutes", None)
        if budget is not None and time.monotonic() - self.fit_started > 60 * budget:
            logger.info("time budget of %s min spent: epoch %d is the last", budget, epoch)
            self.hparams.epoch_counter.limit = epoch

    def on_fit_start(self):
        self.fit_started = time.monotonic()
        super().on_fit_start()

    def save_audio(self, snt_id, mix, targets, predictions):
        """Peak-normalised mixture, references and estimates of one test item under save_folder/audio."""
        folder = Path(self.hparams.save_folder) / "audio_results"
        folder.mkdir(parents=True, exist_ok=True)

        def write(name, signal):
            signal = signal.detach().float().cpu()
            audio_io.save(str(folder / name), (signal / signal.abs().max().clamp_min(1e-8)).unsqueeze(0),
                          self.hparams.sample_rate)

        write(f"{snt_id}_mix.wav", mix)
        for s in range(targets.shape[-1]):
            write(f"{snt_id}_source{s + 1}.wav", targets[:, s])
            write(f"{snt_id}_source{s + 1}hat.wav", predictions[:, s])

    def save_results(self, test_data):
        """Per-utterance metrics of the test set (full length, the loaded best checkpoint) into
        ``output_folder/test_results.csv``, with an ``avg`` row; means go to the log."""
        path = Path(self.hparams.output_folder) / "test_results.csv"
        columns = ["snt_id", "sdr", "sdr_i", "si-snr", "si-snr_i", "si-sdr", "si-sdr_i"]
        loader = sb.dataio.dataloader.make_dataloader(test_data, batch_size=1, num_workers=0)
        rows = []
        self.modules.eval()
        for batch in tqdm(loader, desc="test metrics", dynamic_ncols=True, disable=self.noprogressbar):
            mix, targets = self.batch_signals(batch, self.hparams.num_spks)
            with torch.no_grad():
                est, targets = self.compute_forward(mix, targets, sb.Stage.TEST)
            est, targets = align_estimates(est.float().cpu(), targets.float().cpu())[0], targets[0].float().cpu()
            mix = mix[0].float().cpu().unsqueeze(-1).expand_as(targets)
            reference, estimate, baseline = (x.t().double().numpy() for x in (targets, est, mix))
            with warnings.catch_warnings():  # mir_eval 0.8 deprecates it; it stays the reference SDR
                warnings.simplefilter("ignore", FutureWarning)
                sdr = bss_eval_sources(reference, estimate)[0].mean()
                sdr_mix = bss_eval_sources(reference, baseline)[0].mean()
            metrics = {}
            for name, zero_mean in (("si-snr", True), ("si-sdr", False)):
                value = si_sdr(est.t(), targets.t(), zero_mean).mean().item()
                baseline_value = si_sdr(mix.t(), targets.t(), zero_mean).mean().item()
                metrics[name], metrics[f"{name}_i"] = value, value - baseline_value
            rows.append({"snt_id": batch.id[0], "sdr": sdr, "sdr_i": sdr - sdr_mix, **metrics})
        means = {c: float(np.mean([r[c] for r in rows])) for c in columns[1:]}
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
            writer.writerow({"snt_id": "avg", **means})
        for name, value in means.items():
            logger.info("Mean %s on the test set: %.2f dB", name, value)
        return means


def dataio_prep(hparams):
    """SpeechBrain datasets from the prepared CSVs (mixture and source signals)."""
    signals = ["mix"] + [f"s{i + 1}" for i in range(hparams["num_spks"])]
    datasets = []
    for key in ("train_data", "valid_data", "test_data"):
        datasets.append(sb.dataio.dataset.DynamicItemDataset.from_csv(
            csv_path=hparams[key], replacements={"data_root": hparams["data_folder"]}))
    for name in signals:
        sb.dataio.dataset.add_dynamic_item(datasets, sb.dataio.dataio.read_audio, takes=[f"{name}_wav"],
                                           provides=[f"{name}_sig"])
    sb.dataio.dataset.set_output_keys(datasets, ["id"] + [f"{name}_sig" for name in signals])
    return datasets


def check_rooms_match_the_targets(rooms, dataset: str, task: str, dereverberate: bool) -> None:
    """Dynamic mixtures must have the kind of targets the cv and tt sets have (WHAM!/WHAMR!)."""
    if dataset == "wsj0mix":
        return  # clean cv/tt: rooms, if any, are augmentation
    reverberant = task in ("reverberant", "noisy-reverberant")
    if rooms is None:
        if reverberant:
            logger.warning("task %s has reverberant mixtures but dm_rooms is null: the dynamic mixtures are "
                           "anechoic", task)
        return
    if not reverberant:
        raise ValueError(f"dm_rooms reverberates the training mixtures, but task {task!r} has anechoic ones: "
                         "set dm_rooms: null or a reverberant task")
    expected = "direct" if dereverberate else "reverberant"
    if rooms.target != expected:
        raise ValueError(f"dm_rooms' target is {rooms.target!r} but dereverberate: {dereverberate} makes the cv/tt "
                         f"targets {'the direct path' if dereverberate else 'reverberant'}: set its target to "
                         f"{expected!r}")


def main(argv):
    hparams_file, run_opts, overrides = sb.parse_arguments(argv)
    with open(hparams_file, encoding="utf-8") as fin:
        hparams = load_hyperpyyaml(fin, overrides)
    sb.utils.distributed.ddp_init_group(run_opts)
    sb.create_experiment_directory(experiment_directory=hparams["output_folder"],
                                   hyperparams_to_save=hparams_file, overrides=overrides)
    if run_opts.get("device") == "cpu" and hparams.get("precision") == "fp16":
        hparams["precision"] = "bf16"  # fp16 autocast does not exist on CPU

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from prepare_data import prepare_wsjmix

    layout = {"dataset": hparams.get("dataset", "wsj0mix"), "task": hparams.get("task", "clean"),
              "dereverberate": hparams.get("dereverberate", True)}
    run_on_main(prepare_wsjmix, kwargs={
        "data_folder": hparams["data_folder"], "save_folder": hparams["save_folder"],
        "num_spks": hparams["num_spks"], "sample_rate": hparams["sample_rate"], "mode": hparams["mix_mode"],
        "skip_prep": hparams["skip_prep"], **layout,
    })
    train_data, valid_data, test_data = dataio_prep(hparams)
    train_loader_kwargs = dict(hparams["train_dataloader_opts"])
    if hparams["dynamic_mixing"]:
        from dynamic_mixing import DynamicMixingDataset

        if not hparams["base_folder_dm"]:
            raise ValueError("dynamic_mixing is on: give the folder of single-speaker utterances with "
                             "--base_folder_dm (e.g. /data/wsj0/si_tr_s), or pass --dynamic_mixing False")
        train_loader_kwargs["collate_fn"] = sb.dataio.batch.PaddedBatch
        rooms, noise = (hparams[k]() if hparams.get(k) else None for k in ("dm_rooms", "dm_noise"))
        check_rooms_match_the_targets(rooms, **layout)
        train_data = DynamicMixingDataset(
            base_folder=hparams["base_folder_dm"], num_mixtures=hparams["dm_num_mixtures"] or len(train_data),
            num_spks=hparams["num_spks"], sample_rate=hparams["sample_rate"], segment=hparams["training_signal_len"],
            style=hparams["dm_style"], cache_folder=hparams["dm_cache_folder"], seed=hparams["seed"],
            speaker_prefix=hparams["dm_speaker_prefix"], activlev_file=hparams["dm_activlev_file"],
            speed_factors=hparams["dm_speed_factors"],
            formant_factors=hparams["dm_formant_factors"], rooms=rooms, noise=noise,
        )
    separator = Separation(modules=hparams["modules"], opt_class=hparams["optimizer"], hparams=hparams,
                           run_opts=run_opts, checkpointer=hparams["checkpointer"])
    separator.train_set = train_data
    separator.fit(separator.hparams.epoch_counter, train_data, valid_data,
                  train_loader_kwargs=train_loader_kwargs,
                  valid_loader_kwargs=hparams["valid_dataloader_opts"])
    separator.evaluate(test_data, max_key="si-snr", test_loader_kwargs=hparams["valid_dataloader_opts"])
    if sb.utils.distributed.if_main_process():
        separator.save_results(test_data)


if __name__ == "__main__":
    main(sys.argv[1:])
