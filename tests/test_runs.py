"""sepmamba_sb.runs: the epoch log a run writes (JSON lines) and reads back without parsing text."""

import json

import pytest

from sepmamba_sb.runs import LOG_FILE, log_epoch, total_minutes, training_log


def test_epochs_read_back_in_order_and_a_resumed_epoch_replaces_its_first_record(tmp_path):
    log_epoch(tmp_path, 1, minutes=0.5, lr=1e-3, train=1.0, valid=2.0, skipped_batches=0)
    log_epoch(tmp_path, 2, minutes=1.0, lr=1e-3, train=1.5, valid=2.5, skipped_batches=1)
    log_epoch(tmp_path, 2, minutes=0.6, lr=5e-4, train=1.6, valid=2.6, skipped_batches=0)  # after a resume
    log_epoch(tmp_path, 3, minutes=1.2, lr=5e-4, train=1.7, valid=2.8, skipped_batches=0)
    log = training_log(tmp_path)
    assert [r["epoch"] for r in log] == [1, 2, 3]
    assert log[1] == {"epoch": 2, "minutes": 0.6, "lr": 5e-4, "train": 1.6, "valid": 2.6, "skipped_batches": 0}
    assert all(json.loads(line) for line in (tmp_path / LOG_FILE).read_text().splitlines())


def test_minutes_add_up_over_the_processes_of_a_resumed_run():
    minutes = [0.5, 1.0, 1.5, 0.4, 0.9]  # a first process ran 3 epochs, a resumed one 2
    assert total_minutes([{"minutes": m} for m in minutes]) == pytest.approx(1.5 + 0.9)


def test_a_missing_or_broken_log_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"{tmp_path} has no {LOG_FILE}"):
        training_log(tmp_path)
    (tmp_path / LOG_FILE).write_text('{"epoch": 1, "valid": 2.0}\nepoch: 2, valid si-snr: 3.0\n')
    with pytest.raises(ValueError, match=f"{LOG_FILE}:2: not an epoch record"):
        training_log(tmp_path)
