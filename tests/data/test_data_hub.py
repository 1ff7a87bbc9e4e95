"""data/hub.py: local copies through `datasets.load_dataset`, and a clear error offline."""

from __future__ import annotations

from pathlib import Path

import pytest

from data.hub import DataSourceError, HubUnavailableError, builder_for, load_split

FIXTURES = Path(__file__).parents[1] / "fixtures" / "envs"


@pytest.mark.parametrize("files, builder", [
    ("a.jsonl", "json"), ("a.json", "json"), ("a.jsonl.gz", "json"), ("A.PARQUET", "parquet"), ("a.csv", "csv"),
    (["a.parquet", "b.parquet"], "parquet"), ({"train": "a.jsonl", "test": ["b.jsonl"]}, "json"),
])
def test_builder_for(files, builder):
    assert builder_for(files) == builder


@pytest.mark.parametrize("files", ["a.txt", "noext", ["a.jsonl", "b.parquet"], {"test": "a.xml"}])
def test_builder_for_unknown_or_mixed_formats(files):
    with pytest.raises(DataSourceError, match="cannot tell the format"):
        builder_for(files)


def test_local_clone_with_config(offline):
    ds = load_split(str(FIXTURES / "gsm8k"), "test", name="main", columns=("question", "answer"))
    assert len(ds) == 4 and ds[0]["answer"].endswith("#### 6")
    assert len(load_split(str(FIXTURES / "gsm8k"), "train", name="main")) == 2


def test_single_file_serves_the_split_asked_for(offline):
    path = str(FIXTURES / "math500.jsonl")
    assert len(load_split(path, "test")) == 5
    assert len(load_split(path, "train")) == 5  # one file is whichever split is asked: caller's choice


@pytest.mark.parametrize("data_files", [
    str(FIXTURES / "mbpp" / "sanitized" / "test-00000-of-00001.parquet"),
    [str(FIXTURES / "mbpp" / "sanitized" / "test-00000-of-00001.parquet")],
    {"test": str(FIXTURES / "mbpp" / "sanitized" / "test-00000-of-00001.parquet")},
])
def test_data_files_forms(offline, data_files):
    ds = load_split("google-research-datasets/mbpp", "test", name="sanitized", data_files=data_files)
    assert len(ds) == 4 and ds[0]["task_id"] == 601


def test_data_files_without_the_split(offline):
    with pytest.raises(DataSourceError, match=r"split 'test' is not in data_files; it has \['train'\]"):
        load_split("x", "test", data_files={"train": "a.jsonl"})


def test_unknown_split_of_a_clone(offline):
    with pytest.raises(DataSourceError, match="validation"):
        load_split(str(FIXTURES / "gsm8k"), "validation", name="main")


def test_missing_columns_are_named(offline):
    with pytest.raises(DataSourceError, match=r"lacks column\(s\) \['question'\]"):
        load_split(str(FIXTURES / "math500.jsonl"), "test", columns=("problem", "question"))


def test_missing_local_file(offline, tmp_path):
    with pytest.raises(DataSourceError, match="no data"):
        load_split(str(tmp_path / "absent"), "test")
    with pytest.raises(DataSourceError):
        load_split("json", "test", data_files=str(tmp_path / "absent.jsonl"))


def test_unreachable_hub_names_the_options(offline):
    with pytest.raises(HubUnavailableError) as info:
        load_split("openai/gsm8k", "test", name="main", env="gsm8k")
    message = str(info.value)
    assert "get_env('gsm8k', path=" in message and "data_files=" in message
    assert isinstance(info.value, ConnectionError)
