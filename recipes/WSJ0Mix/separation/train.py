#!/usr/bin/env python3
"""Train and evaluate SepMamba on wsj0-2mix / wsj0-3mix and their noisy and reverberant versions
(WHAM!, WHAMR!), and on Libri2Mix / Libri3Mix, the SpeechBrain way. The MiniMix, WHAMandWHAMR and
LibriMix recipes link to this file.

    python train.py hparams/sepmamba.yaml --data_folder /data/wsj0-mix/2speakers \\
        --base_folder_dm /data/wsj0/si_tr_s

The yaml's ``dataset`` (default ``wsj0mix``), ``task``, ``dereverberate`` and (LibriMix) ``train_split``
tell the data preparation (:mod:`sepmamba_sb.data.wsjmix`) which folders hold the mixtures and the targets;
its ``dm_dataset`` declares the dynamic mixing (:class:`sepmamba_sb.data.mixing.DynamicMixingDataset`, with
rooms and noise from ``dm_rooms`` and ``dm_noise``), which this script only instantiates.

The yaml chooses the model form: a ``sepmamba`` module (the paper's model, waveforms out) or
``encoder`` / ``masknet`` / ``decoder`` modules (SpeechBrain's masking contract). Training uses
permutation-invariant SI-SNR (logged as SI-SNR in dB, higher is better); the checkpoint kept as
best is the one with the best VALIDATION (cv) SI-SNR; the test set (tt) is evaluated at full
length, utterance by utterance, into ``test_results.csv`` (:mod:`sepmamba_sb.metrics`: SDR and SDRi
from mir_eval's bss_eval_sources, SI-SNR/SI-SNRi, and SI-SDR/SI-SDRi without mean removal as the paper
reports). Each epoch is also logged to ``train_log.jsonl`` (:mod:`sepmamba_sb.runs`). Runs resume from
their last checkpoint when started again.
Multi-GPU: ``torchrun --nproc_per_node=N train.py hparams/sepmamba.yaml ...``.
"""

from __future__ import annotations

import csv
import logging
import sys
import time
from pathlib import Path

import speechbrain as sb
import torch
from hyperpyyaml import load_hyperpyyaml
from speechbrain.nnet.losses import get_si_snr_with_pitwrapper
from speechbrain.nnet.schedulers import ReduceLROnPlateau, update_learning_rate
from speechbrain.utils.distributed import run_on_main
from tqdm import tqdm

from sepmamba_sb import runs
from sepmamba_sb.audio import write_audio
from sepmamba_sb.data.mixing import speed_perturbed
from sepmamba_sb.data.wsjmix import check_rooms_match_targets, prepare_wsjmix, static_folders
from sepmamba_sb.lobes import as_separator
from sepmamba_sb.metrics import score_utterance, write_results

logger = logging.getLogger(__name__)


class Separation(sb.Brain):
    """Permutation-invariant SI-SNR training of a separator given as ``sepmamba`` or as the
    ``encoder``/``masknet``/``decoder`` triple."""

    @property
    def separator(self):
        """The modules as one separator, [B, T] -> [B, T, S] (built on use: DDP may have wrapped them)."""
        return as_separator(self.modules, self.hparams.num_spks)

    def compute_forward(self, mix, targets, stage, images=None, noise=None):
        """mix: [B, T]; targets: [B, T, S]; with static speed perturbation, the sources' reverberant images
        [B, T, S] and the noise [B, T] the mixture is rebuilt from. Returns (estimates, targets), both
        [B, T', S]."""
        mix, targets = mix.to(self.device), targets.to(self.device)
        if stage == sb.Stage.TRAIN:
            with torch.no_grad():
                if self.hparams.use_speedperturb:
                    images, noise = (None if x is None else x.to(self.device) for x in (images, noise))
                    mix, targets = speed_perturbed(self.hparams.speed_perturb, targets, images, noise)
                if self.hparams.limit_training_signal_len:
                    mix, targets = self.crop(mix, targets)
        return self.separator(mix), targets

    def crop(self, mix, targets):
        """One random window of ``training_signal_len`` samples for the whole batch."""
        length = self.hparams.training_signal_len
        start = int(torch.randint(0, 1 + max(0, mix.shape[1] - length), (1,)))
        return mix[:, start:start + length], targets[:, start:start + length]

    def compute_objectives(self, predictions, targets):
        """The yaml's ``loss`` per example, [B] (negative PIT SI-SNR, or another loss in dB)."""
        return self.hparams.loss(targets, predictions)

    @staticmethod
    def batch_signals(batch, num_spks):
        """(mix [B, T], targets [B, T, S]) from a PaddedBatch."""
        mix, _ = batch.mix_sig
        targets = torch.stack([getattr(batch, f"s{i + 1}_sig")[0] for i in range(num_spks)], dim=-1)
        return mix, targets

    @staticmethod
    def static_parts(batch, num_spks):
        """(images [B, T, S] or None, noise [B, T] or None): what a static training batch holds to rebuild
        its mixtures from after speed perturbation (:func:`dataio_prep`)."""
        images = None
        if hasattr(batch, "s1_image_sig"):
            images = torch.stack([getattr(batch, f"s{i + 1}_image_sig")[0] for i in range(num_spks)], dim=-1)
        return images, batch.noise_sig[0] if hasattr(batch, "noise_sig") else None

    def fit_batch(self, batch):
        """One step; examples already better than ``threshold`` and non-finite or too large losses
        are left out (the latter counted), gradients clipped to ``clip_grad_norm``."""
        mix, targets = self.batch_signals(batch, self.hparams.num_spks)
        images, noise = self.static_parts(batch, self.hparams.num_spks)
        with self.training_ctx:
            predictions, targets = self.compute_forward(mix, targets, sb.Stage.TRAIN, images, noise)
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
            # validation and test report SI-SNR whatever the training loss, so cv selects on SI-SNR
            loss = get_si_snr_with_pitwrapper(targets, predictions)
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
        stats = {"si-snr": -stage_loss}  # valid, test: SI-SNR; train: minus the training loss (SI-SNR by default)
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
            if sb.utils.distributed.if_main_process():
                runs.log_epoch(self.hparams.output_folder, epoch, minutes, current_lr, self.train_stats["si-snr"],
                               stats["si-snr"], skipped_batches=self.train_stats["skipped_batches"])
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

        def write(name, signal):
            signal = signal.detach().float().cpu()
            write_audio(folder / name, signal / signal.abs().max().clamp_min(1e-8), self.hparams.sample_rate)

        write(f"{snt_id}_mix.wav", mix)
        for s in range(targets.shape[-1]):
            write(f"{snt_id}_source{s + 1}.wav", targets[:, s])
            write(f"{snt_id}_source{s + 1}hat.wav", predictions[:, s])

    def save_results(self, test_data):
        """Per-utterance scores of the test set (full length, the loaded best checkpoint) into
        ``output_folder/test_results.csv`` (:mod:`sepmamba_sb.metrics`); means go to the log."""
        loader = sb.dataio.dataloader.make_dataloader(test_data, batch_size=1, num_workers=0)
        rows = []
        self.modules.eval()
        for batch in tqdm(loader, desc="test metrics", dynamic_ncols=True, disable=self.noprogressbar):
            mix, targets = self.batch_signals(batch, self.hparams.num_spks)
            with torch.no_grad():
                est, targets = self.compute_forward(mix, targets, sb.Stage.TEST)
            rows.append({"snt_id": batch.id[0], **score_utterance(est[0], targets[0], mix[0])})
        means = write_results(Path(self.hparams.output_folder) / runs.RESULTS_FILE, rows)
        for name, value in means.items():
            logger.info("Mean %s on the test set: %.2f dB", name, value)
        return means


def dataio_prep(hparams, layout):
    """SpeechBrain datasets from the prepared CSVs: mixture and source signals, and, for training on static
    mixtures with speed perturbation, the noise and reverberant images they are rebuilt from
    (:func:`sepmamba_sb.data.wsjmix.static_folders`).

    Raises
    ------
    ValueError
        When the training CSV lacks those columns (prepared by an older version: delete the CSVs).
    """
    signals = ["mix"] + [f"s{i + 1}" for i in range(hparams["num_spks"])]
    datasets = []
    for key in ("train_data", "valid_data", "test_data"):
        datasets.append(sb.dataio.dataset.DynamicItemDataset.from_csv(
            csv_path=hparams[key], replacements={"data_root": hparams["data_folder"]}))
    for name in signals:
        sb.dataio.dataset.add_dynamic_item(datasets, sb.dataio.dataio.read_audio, takes=[f"{name}_wav"],
                                           provides=[f"{name}_sig"])
    sb.dataio.dataset.set_output_keys(datasets, ["id"] + [f"{name}_sig" for name in signals])
    static = []
    if hparams["use_speedperturb"] and not hparams["dynamic_mixing"]:
        static = list(static_folders(num_spks=hparams["num_spks"], **layout))
    with open(hparams["train_data"], newline="", encoding="utf-8") as f:
        columns = next(csv.reader(f))
    missing = [f"{name}_wav" for name in static if f"{name}_wav" not in columns]
    if missing:
        raise ValueError(f"{hparams['train_data']} has no {missing}, which speed perturbation rebuilds the noisy "
                         "or reverberant mixtures from: delete the CSVs in save_folder to prepare them again")
    for name in static:
        sb.dataio.dataset.add_dynamic_item([datasets[0]], sb.dataio.dataio.read_audio, takes=[f"{name}_wav"],
                                           provides=[f"{name}_sig"])
    sb.dataio.dataset.set_output_keys([datasets[0]], ["id"] + [f"{name}_sig" for name in signals + static])
    return datasets


def dynamic_mixing(hparams, num_mixtures: int):
    """The yaml's ``dm_dataset`` with ``num_mixtures`` per epoch (``dm_num_mixtures``, else ``num_mixtures``).

    Raises
    ------
    ValueError
        For a yaml without ``dm_dataset``, naming what to add.
    """
    if "dm_dataset" not in hparams:
        raise ValueError("dynamic_mixing is on but the yaml has no dm_dataset: declare the dataset as "
                         "recipes/WSJ0Mix/separation/hparams/sepmamba.yaml does (dm_dataset: "
                         "!name:sepmamba_sb.data.mixing.DynamicMixingDataset with its options)")
    return hparams["dm_dataset"](num_mixtures=hparams["dm_num_mixtures"] or num_mixtures)


def main(argv):
    hparams_file, run_opts, overrides = sb.parse_arguments(argv)
    with open(hparams_file, encoding="utf-8") as fin:
        hparams = load_hyperpyyaml(fin, overrides)
    sb.utils.distributed.ddp_init_group(run_opts)
    sb.create_experiment_directory(experiment_directory=hparams["output_folder"],
                                   hyperparams_to_save=hparams_file, overrides=overrides)
    if run_opts.get("device") == "cpu" and hparams.get("precision") == "fp16":
        hparams["precision"] = "bf16"  # fp16 autocast does not exist on CPU

    layout = {"dataset": hparams.get("dataset", "wsj0mix"), "task": hparams.get("task", "clean"),
              "dereverberate": hparams.get("dereverberate", True)}
    run_on_main(prepare_wsjmix, kwargs={
        "data_folder": hparams["data_folder"], "save_folder": hparams["save_folder"],
        "num_spks": hparams["num_spks"], "sample_rate": hparams["sample_rate"], "mode": hparams["mix_mode"],
        "skip_prep": hparams["skip_prep"], "train_split": hparams.get("train_split", "train-360"), **layout,
    })
    train_data, valid_data, test_data = dataio_prep(hparams, layout)
    train_loader_kwargs = dict(hparams["train_dataloader_opts"])
    if hparams["dynamic_mixing"]:
        train_data = dynamic_mixing(hparams, len(train_data))
        check_rooms_match_targets(train_data.rooms, **layout)
        if hparams["use_speedperturb"] and (train_data.rooms is not None or train_data.noise is not None):
            raise ValueError("use_speedperturb rebuilds each mixture as the sum of its perturbed sources, which would "
                             "drop the dynamic mixtures' rooms and noise: set it False and perturb the speed in the "
                             "dynamic mixing (dm_speed_factors)")
        train_loader_kwargs["collate_fn"] = sb.dataio.batch.PaddedBatch
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
