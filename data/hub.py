"""Loading a split of a dataset through `datasets.load_dataset`, from the hub or a local copy.

The machines this suite is built on cannot reach the Hugging Face hub, and many users train
offline. Every hub-backed environment therefore takes two options, and this module
interprets them the same way for all:

* `path` — a hub id (`openai/gsm8k`), a local folder (a clone of the hub repository, or
  any folder `load_dataset` reads), or a single local data file (`.jsonl`, `.json`,
  `.parquet`, `.csv`, optionally `.gz`), which then serves as whichever split is asked for.
* `data_files` — local files for `datasets`' packaged loaders: a dict `{split: file(s)}`,
  or a file / list of files used for the split that is asked for. The loader (json,
  parquet, csv) follows from the file extension unless `path` names one.

When the hub cannot be reached and no local copy was given, `HubUnavailableError` says
which options to pass. Set `HF_HUB_OFFLINE=1` (or `HF_DATASETS_OFFLINE=1`) to fail at once
instead of after `datasets`' network retries.
"""

from __future__ import annotations

import os
from typing import Any, Iterable

_BUILDERS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv", ".arrow": "arrow"}
PACKAGED = set(_BUILDERS.values()) | {"text"}


class HubUnavailableError(ConnectionError):
    """The hub could not be reached and no local copy was given."""


class DataSourceError(ValueError):
    """A data source cannot give what was asked: a missing file, split, config or column."""


def builder_for(files: Any) -> str:
    """The packaged `datasets` loader for a file, a list of files, or a {split: files} dict."""
    if isinstance(files, dict):
        files = [f for v in files.values() for f in ([v] if isinstance(v, str) else v)]
    names = [files] if isinstance(files, str) else list(files)
    kinds = {_BUILDERS.get(os.path.splitext(n[:-3] if n.endswith(".gz") else n)[1].lower()) for n in names}
    if len(kinds) != 1 or None in kinds:
        raise DataSourceError(f"cannot tell the format of data files {names!r}; use extensions among "
                              f"{sorted(_BUILDERS)} (optionally .gz), or pass path=<one of {sorted(PACKAGED)}>")
    return kinds.pop()


def _resolve(path: str, data_files: Any, split: str) -> tuple[str, Any]:
    """(first argument of `load_dataset`, its `data_files`) for the options given."""
    if data_files is not None:
        if not isinstance(data_files, dict):
            data_files = {split: data_files}
        elif split not in data_files:
            raise DataSourceError(f"split {split!r} is not in data_files; it has {sorted(data_files)}")
        builder = path if path in PACKAGED or os.path.isdir(path) else builder_for(data_files)
        return builder, data_files
    if os.path.isfile(path):
        return builder_for(path), {split: path}
    return path, None


def _is_local(path: str, data_files: Any) -> bool:
    return data_files is not None or os.path.exists(path) or path.startswith((".", "/", "~"))


def load_split(path: str, split: str, *, name: str | None = None, data_files: Any = None,
               columns: Iterable[str] = (), env: str = "this environment"):
    """One split as a `datasets.Dataset`, checked to have `columns`.

    `env` names the environment in error messages (`get_env(env, path=...)`).
    """
    import datasets  # slow to import; only the hub-backed environments need it

    source, files = _resolve(path, data_files, split)
    try:
        if files is not None:
            ds = datasets.load_dataset(source, name if source not in PACKAGED else None, data_files=files, split=split)
        else:
            ds = datasets.load_dataset(source, name, split=split)
    except ConnectionError as exc:
        if _is_local(path, data_files):
            raise DataSourceError(f"could not read local data {path!r} / {data_files!r}: {exc}") from exc
        raise HubUnavailableError(
            f"could not load {path!r} from the Hugging Face hub ({exc}). Give a local copy instead: "
            f"get_env({env!r}, path='/path/to/clone/or/file.jsonl') or "
            f"get_env({env!r}, data_files={{'{split}': 'file.jsonl'}})") from exc
    except FileNotFoundError as exc:  # includes datasets' DatasetNotFoundError
        hint = "" if _is_local(path, data_files) else f"; offline? pass path= or data_files= to get_env({env!r})"
        raise DataSourceError(f"no data at {path!r} (data_files={data_files!r}): {exc}{hint}") from exc
    except ValueError as exc:  # unknown split or config: datasets lists the valid ones
        raise DataSourceError(f"{path!r}: {exc}") from exc
    missing = [c for c in columns if c not in ds.column_names]
    if missing:
        raise DataSourceError(f"{path!r} split {split!r} lacks column(s) {missing}; it has {ds.column_names}")
    return ds
