"""wsj0-2mix / wsj0-3mix (pywsj0-mix or MERL layout), their noisy (WHAM!) and reverberant (WHAMR!)
versions, and Libri2Mix / Libri3Mix -> SpeechBrain CSVs. The recipes' ``prepare_data.py`` is this
module's :func:`prepare_wsjmix`.

Reads ``<data_folder>/wav{8,16}k/{min,max}/{tr,cv,tt}/{mix,s1,s2[,s3]}/*.wav`` and writes
``<save_folder>/wsj_{tr,cv,tt}.csv``; for WHAM! and WHAMR! (``dataset``), the ``task`` and
``dereverberate`` choose the mixture and source folders (:func:`folders_for`) and the CSVs are
``wham_*.csv`` / ``whamr_*.csv``. LibriMix (``dataset="librimix"``) has WHAM!'s folders in the splits
``train-360`` (or ``train-100``), ``dev`` and ``test`` (:func:`split_names`), and its CSVs are named as
SpeechBrain's LibriMix recipe names them: ``libri2mix_train-360.csv``, ``libri2mix_dev.csv``,
``libri2mix_test.csv`` (:func:`csv_names`). The CSVs have SpeechBrain's separation columns
(``ID, duration, mix_wav, mix_wav_format, mix_wav_opts, s1_wav, ...``); paths are written relative to
``$data_root`` (the recipe replaces it with ``data_folder``), so the CSVs survive moving the data.

For noisy tasks the CSVs also name each mixture's noise (``noise_wav``), and for reverberant mixtures
with direct-path targets each source's reverberant image (``s<i>_image_wav``): what a static training
mixture is rebuilt from after speed perturbation (:func:`sepmamba_sb.data.mixing.speed_perturbed`).

Every file is checked once: a mixture without its sources, a source folder the number of speakers
does not expect, a file at the wrong sample rate or one that cannot be read are errors that name
the file. When all three CSVs exist the work is skipped (delete them to prepare again).
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from sepmamba_sb.audio import audio_info

if TYPE_CHECKING:
    from sepmamba_sb.rooms import RoomSimulator

logger = logging.getLogger(__name__)

SPLITS = ("tr", "cv", "tt")
DATASETS = ("wsj0mix", "wham", "whamr", "librimix")
LIBRIMIX_TRAIN_SPLITS = ("train-360", "train-100")
TASKS = ("clean", "noisy", "reverberant", "noisy-reverberant", "enhancement")


def is_reverberant(dataset: str, task: str) -> bool:
    """Whether ``dataset``'s ``task`` separates reverberant mixtures (WHAMR!'s enhancement does)."""
    return task in ("reverberant", "noisy-reverberant") or (task == "enhancement" and dataset == "whamr")


def is_noisy(task: str) -> bool:
    """Whether ``task``'s mixtures hold noise."""
    return task in ("noisy", "noisy-reverberant", "enhancement")


def folders_for(dataset: str, task: str, dereverberate: bool, num_spks: int) -> tuple[str, list[str]]:
    """The mixture folder and the source folders that ``dataset``'s ``task`` reads.

    - ``wsj0mix``: ``mix`` and ``s1..`` (the task must be ``clean``);
    - ``wham`` and ``librimix``: ``mix_clean`` (``clean``), ``mix_both`` (``noisy``) or ``mix_single``
      (``enhancement``: one speaker and noise, ``num_spks`` 1), and ``s1..``;
    - ``whamr``: ``mix_clean_anechoic`` / ``mix_both_anechoic`` (``clean`` / ``noisy``),
      ``mix_clean_reverb`` (``reverberant``), ``mix_both_reverb`` (``noisy-reverberant``) or
      ``mix_single_reverb`` (``enhancement``); the sources ``s1_anechoic..`` (the direct path: separate
      and dereverberate) or, for reverberant mixtures with ``dereverberate=False``, ``s1_reverb..``.
    """
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    reverberant = is_reverberant(dataset, task)
    if (dataset == "wsj0mix" and task != "clean") or (dataset in ("wham", "librimix") and reverberant):
        raise ValueError(f"the {dataset} dataset has no {task} mixtures: use "
                         f"{'wham (noisy) or ' if dataset == 'wsj0mix' else ''}whamr (reverberant)")
    if (task == "enhancement") != (num_spks == 1):
        raise ValueError(f"task {task!r} with num_spks {num_spks}: the enhancement task (mix_single) has one "
                         "speaker, the others two or three")
    sources = [f"s{i + 1}" for i in range(num_spks)]
    if dataset == "wsj0mix":
        return "mix", sources
    noisy = {"noisy": "both", "noisy-reverberant": "both", "enhancement": "single"}.get(task, "clean")
    if dataset in ("wham", "librimix"):
        return f"mix_{noisy}", sources
    mixture = f"mix_{noisy}_{'reverb' if reverberant else 'anechoic'}"
    kind = "reverb" if reverberant and not dereverberate else "anechoic"
    return mixture, [f"{s}_{kind}" for s in sources]


def split_names(dataset: str, train_split: str = "train-360") -> dict[str, str]:
    """The folder of each split (``tr``, ``cv``, ``tt``) in ``dataset``: the same names for wsj0-mix, WHAM!
    and WHAMR!; ``train_split`` (``train-360`` or ``train-100``), ``dev`` and ``test`` for LibriMix."""
    if dataset != "librimix":
        return {split: split for split in SPLITS}
    if train_split not in LIBRIMIX_TRAIN_SPLITS:
        raise ValueError(f"train_split must be one of {LIBRIMIX_TRAIN_SPLITS} (LibriMix's training sets), "
                         f"got {train_split!r}")
    return {"tr": train_split, "cv": "dev", "tt": "test"}


def csv_names(dataset: str, num_spks: int, train_split: str = "train-360") -> dict[str, str]:
    """The CSV file of each split (``tr``, ``cv``, ``tt``): ``wsj_tr.csv``, ``wham_tr.csv``, ``whamr_tr.csv``...,
    and for LibriMix SpeechBrain's names, ``libri2mix_train-360.csv``, ``libri2mix_dev.csv``...

    Example
    -------
    >>> csv_names("librimix", 3)["cv"]
    'libri3mix_dev.csv'
    """
    prefix = {"wsj0mix": "wsj", "wham": "wham", "whamr": "whamr", "librimix": f"libri{num_spks}mix"}[dataset]
    return {split: f"{prefix}_{name}.csv" for split, name in split_names(dataset, train_split).items()}


def noise_for_task(task: str, noise):
    """The dynamic mixtures' noise: ``noise`` (a :class:`sepmamba_sb.noise.NoiseSource` or a yaml's ``!name:``
    factory of one) for the tasks whose mixtures hold noise, None for the others: one yaml declares the
    noise and serves both (``--task clean`` trains on clean dynamic mixtures, as its cv and tt are)."""
    return noise if is_noisy(task) else None


def static_folders(dataset: str, task: str, dereverberate: bool, num_spks: int) -> dict[str, str]:
    """What a static mixture is rebuilt from after speed perturbation, besides its targets: column name
    -> folder. ``noise`` for noisy tasks; ``s<i>_image`` (the reverberant images ``s<i>_reverb``) for
    reverberant mixtures with direct-path targets."""
    extra = {"noise": "noise"} if is_noisy(task) and dataset != "wsj0mix" else {}
    if is_reverberant(dataset, task) and dereverberate:
        extra.update({f"s{i + 1}_image": f"s{i + 1}_reverb" for i in range(num_spks)})
    return extra


def noise_folder(data_folder: str | Path, sample_rate: int, mode: str, split: str = "tr") -> Path:
    """``<data_folder>/wav{sample_rate//1000}k/<mode>/<split>/noise``: a WHAM!/WHAMR! split's noise, at the
    recipe's rate (what a recipe yaml's ``dm_noise`` reads; :class:`sepmamba_sb.noise.NoiseSource` names
    a missing folder)."""
    return split_folder(data_folder, sample_rate, mode, split) / "noise"


def split_folder(data_folder: Path, sample_rate: int, mode: str, split: str) -> Path:
    """``<data_folder>/wav{sample_rate//1000}k/<mode>/<split>``."""
    return Path(data_folder) / f"wav{sample_rate // 1000}k" / mode / split


def _audio_info(path: Path, sample_rate: int) -> float:
    """Duration in seconds of a readable mono-or-multichannel wav at ``sample_rate``."""
    info = audio_info(path)
    if info.samplerate != sample_rate:
        raise ValueError(f"{path} is sampled at {info.samplerate} Hz, but the recipe expects {sample_rate} Hz "
                         "(sample_rate in the yaml; pick the wav8k or wav16k folder that matches)")
    if info.frames == 0:
        raise ValueError(f"{path} is empty")
    return info.frames / info.samplerate


def split_rows(data_folder: Path, split: str, num_spks: int, sample_rate: int, mode: str, mix_folder: str = "mix",
               source_folders: list[str] | None = None, extra_folders: dict[str, str] | None = None,
               all_speakers: bool = True) -> list[dict]:
    """Check one split and return its CSV rows (sorted by ID): ``mix_wav`` from ``mix_folder``,
    ``s<i>_wav`` from ``source_folders[i-1]`` (default ``s1``, ``s2``...), and ``<name>_wav`` from each
    folder of ``extra_folders`` (name -> folder). ``all_speakers``: the mixtures hold ``num_spks``
    speakers, so a source folder beyond them means other data (False: one speaker's mixtures of a
    two-speaker corpus, WHAM!'s ``mix_single``)."""
    source_folders = source_folders or [f"s{i + 1}" for i in range(num_spks)]
    extra_folders = extra_folders or {}
    folder = split_folder(data_folder, sample_rate, mode, split)
    if not folder.is_dir():
        there = sorted(p.name for p in folder.parent.iterdir()) if folder.parent.is_dir() else None
        expected = (f"wav{sample_rate // 1000}k/{mode}/{{train-360,dev,test}} as LibriMix writes it (e.g. "
                    f"/data/Libri{num_spks}Mix)" if split in ("dev", "test", *LIBRIMIX_TRAIN_SPLITS) else
                    f"wav{sample_rate // 1000}k/{mode}/{{tr,cv,tt}} as pywsj0-mix writes it (e.g. "
                    f"/data/wsj0-mix/{num_spks}speakers)")
        raise FileNotFoundError(f"split folder {folder} does not exist"
                                + (f" ({folder.parent} holds {there})" if there is not None else "")
                                + f": data_folder must hold {expected}")
    extra = folder / f"s{num_spks + 1}"
    if all_speakers and extra.is_dir():
        raise ValueError(f"{extra} exists, but num_spks is {num_spks}: this looks like "
                         f"{num_spks + 1}-speaker data; set num_spks (and the data_folder) consistently")
    for name in [mix_folder, *source_folders, *extra_folders.values()]:
        if not (folder / name).is_dir():
            there = sorted(p.name for p in folder.iterdir() if p.is_dir())
            raise FileNotFoundError(f"{folder / name} does not exist (the split holds {there}): is data_folder the "
                                    "dataset the yaml names, with the folders its task needs?")
    mixtures = sorted((folder / mix_folder).glob("*.wav"))
    if not mixtures:
        raise ValueError(f"split {split} is empty: no .wav files in {folder / mix_folder}")
    rows = []
    root = Path(data_folder)
    for mix in mixtures:
        row = {"ID": mix.stem, "duration": f"{_audio_info(mix, sample_rate):.4f}"}
        entries = [("mix", mix)]
        parts = [(f"s{s}", f"source {name}") for s, name in enumerate(source_folders, 1)]
        parts += [(column, name) for column, name in extra_folders.items()]
        for column, what in parts:
            source = folder / what.removeprefix("source ") / mix.name
            if not source.is_file():
                raise FileNotFoundError(f"mixture {mix} has no {what}: {source} is missing")
            _audio_info(source, sample_rate)
            entries.append((column, source))
        for name, path in entries:
            row[f"{name}_wav"] = "$data_root/" + path.relative_to(root).as_posix()
            row[f"{name}_wav_format"] = "wav"
            row[f"{name}_wav_opts"] = ""
        rows.append(row)
    return rows


def prepare_wsjmix(data_folder: str | Path, save_folder: str | Path, num_spks: int = 2, sample_rate: int = 8000,
                   mode: str = "min", skip_prep: bool = False, dataset: str = "wsj0mix", task: str = "clean",
                   dereverberate: bool = True, train_split: str = "train-360") -> None:
    """Write ``wsj_{tr,cv,tt}.csv`` for a wsj0-mix folder (``wham_*`` / ``whamr_*`` for WHAM! / WHAMR!,
    ``libri2mix_{train-360,dev,test}.csv`` for LibriMix: :func:`csv_names`).

    Parameters
    ----------
    data_folder : str or Path
        The ``2speakers`` / ``3speakers`` folder of pywsj0-mix (it contains ``wav8k``, ``wav16k``),
        WHAM!'s / WHAMR!'s output folder, or LibriMix's ``Libri2Mix`` / ``Libri3Mix``.
    save_folder : str or Path
        Where the CSVs go.
    num_spks : int
        2 or 3 (1 for the enhancement task).
    sample_rate : int
        8000 or 16000 (selects ``wav8k`` / ``wav16k``; every file must be at this rate).
    mode : {"min", "max"}
        pywsj0-mix's length mode.
    skip_prep : bool
        Do nothing (the CSVs are given).
    dataset : {"wsj0mix", "wham", "whamr", "librimix"}
        The layout of ``data_folder``.
    task : {"clean", "noisy", "reverberant", "noisy-reverberant", "enhancement"}
        Which mixtures to separate (:func:`folders_for`; also the columns of :func:`static_folders`).
    dereverberate : bool
        WHAMR!'s reverberant tasks: direct-path targets (True) or the reverberant images.
    train_split : {"train-360", "train-100"}
        LibriMix's training set (:func:`split_names`; other datasets ignore it).
    """
    if skip_prep:
        return
    mix_folder, source_folders = folders_for(dataset, task, dereverberate, num_spks)
    extra_folders = static_folders(dataset, task, dereverberate, num_spks)
    if num_spks not in (1, 2, 3):
        raise ValueError(f"num_spks must be 2 or 3 for wsj0-mix (1 for enhancement), got {num_spks}")
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
    data_folder, save_folder = Path(data_folder), Path(save_folder)
    if not data_folder.is_dir():
        raise FileNotFoundError(f"data_folder {data_folder} does not exist")
    names = split_names(dataset, train_split)
    csvs = {split: save_folder / name for split, name in csv_names(dataset, num_spks, train_split).items()}
    if all(path.is_file() for path in csvs.values()):
        logger.info("%s already hold %s: skipping data preparation", save_folder,
                    ", ".join(p.name for p in csvs.values()))
        return
    save_folder.mkdir(parents=True, exist_ok=True)
    for split, path in csvs.items():
        rows = split_rows(data_folder, names[split], num_spks, sample_rate, mode, mix_folder, source_folders,
                          extra_folders, all_speakers=task != "enhancement")
        tmp = path.with_suffix(".csv.tmp")
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        tmp.replace(path)  # a CSV exists only once complete, so an interrupted run prepares again
        logger.info("wrote %s (%d mixtures)", path, len(rows))


def check_rooms_match_targets(rooms: RoomSimulator | None, dataset: str, task: str, dereverberate: bool) -> None:
    """Dynamic mixtures must have the kind of targets the cv and tt sets of ``dataset``'s ``task`` have.

    Parameters
    ----------
    rooms : RoomSimulator or None
        The dynamic mixing's rooms (``DynamicMixingDataset.rooms``).
    dataset, task, dereverberate
        As :func:`prepare_wsjmix`.

    Raises
    ------
    ValueError
        When the rooms' targets are not the cv/tt targets (for an anechoic task, the direct path: the
        rooms are then augmentation), saying what to set.
    """
    if dataset == "wsj0mix":
        return  # clean cv/tt: rooms, if any, are augmentation
    reverberant = is_reverberant(dataset, task)
    if rooms is None:
        if reverberant:
            logger.warning("task %s has reverberant mixtures but dm_rooms is null: the dynamic mixtures are "
                           "anechoic", task)
        return
    if not reverberant:  # rooms as augmentation: the targets must still be the anechoic sources
        if rooms.target != "direct":
            raise ValueError(f"dm_rooms reverberates the training mixtures and task {task!r} has anechoic ones: "
                             f"its targets must be the direct path (target: direct, not {rooms.target!r}), or "
                             "set dm_rooms: null or a reverberant task")
        return
    expected = "direct" if dereverberate else "reverberant"
    if rooms.target != expected:
        raise ValueError(f"dm_rooms' target is {rooms.target!r} but dereverberate: {dereverberate} makes the cv/tt "
                         f"targets {'the direct path' if dereverberate else 'reverberant'}: set its target to "
                         f"{expected!r}")
