"""ncbook._io: the one atomic write, for text, CSV, JSON, bytes and torch checkpoints."""

from __future__ import annotations

import json
import pickle

import pandas as pd
import pytest
import torch

from ncbook._io import save_torch, write_bytes, write_csv, write_json, write_text


def test_every_writer_round_trips_and_creates_the_folder(tmp_path):
    folder = tmp_path / "new" / "folder"
    assert json.loads(write_json(folder / "a.json", {"x": [1, 2]}).read_text()) == {"x": [1, 2]}
    frame = pd.DataFrame({"a": [1, 2], "b": [0.5, 1.5]})
    pd.testing.assert_frame_equal(pd.read_csv(write_csv(folder / "t.csv", frame)), frame)
    assert write_text(folder / "t.txt", "één\n").read_text(encoding="utf-8") == "één\n"
    assert write_bytes(folder / "b.bin", b"\x00\x01").read_bytes() == b"\x00\x01"
    state = {"w": torch.arange(3.0)}
    assert torch.equal(torch.load(save_torch(folder / "c.pt", state))["w"], state["w"])
    assert sorted(p.name for p in folder.iterdir()) == ["a.json", "b.bin", "c.pt", "t.csv", "t.txt"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = save_torch(tmp_path / "ckpt.pt", {"epoch": 1})
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        save_torch(path, {"epoch": 2, "bad": lambda: None})  # a lambda cannot be pickled
    assert torch.load(path) == {"epoch": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]
