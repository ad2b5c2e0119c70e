"""Named datasets: small public traces shipped inside the package (with checksums), and the larger public
traces sysgym reads from a path the user gives (never downloaded at run time).

    import sysgym.datasets as ds
    ds.list()                                   # ['azure-code-2023', 'azure-conv-2023'] (shipped)
    ds.list(external=True)                      # also the documented traces read from a path
    d = ds.load("azure-conv-2023")              # checksum verified; d.path, d.info, d.read()
    ds.path("azure-conv-2023")                  # the verified file, for loaders that take a path
    ds.info("burstgpt").source                  # where to get a trace that is not shipped
    ds.load("burstgpt", path="BurstGPT_1.csv")  # a local copy: its columns are checked

Each family's own loader parses the traces into instances (e.g. `sysgym.envs.llm_serving.load_trace(
ds.path("azure-conv-2023"), format="azure")`); this module knows files, licences and checksums only. The
attribution every shipped file requires is in the NOTICE file and in `info(name).attribution`.
"""
from __future__ import annotations

import builtins
import csv
import functools
import hashlib
import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from sysgym.errors import SysgymError, TraceFormatError, UnknownNameError

_AZURE_2023_ATTRIBUTION = (
    'Azure LLM inference trace 2023 (Azure/AzurePublicDataset, CC-BY attribution licence), published with: '
    'Pratyush Patel, Esha Choukse, Chaojie Zhang, Aashaka Shah, Inigo Goiri, Saeed Maleki, Ricardo Bianchini, '
    '"Splitwise: Efficient Generative LLM Inference Using Phase Splitting", ISCA 2024. Row-identical reformatting '
    'by microsoft/vidur (data/processed_traces/, MIT License, Copyright (c) Microsoft Corporation).')


class DatasetError(SysgymError, ValueError):
    """A dataset file that is missing, altered (checksum) or not in the dataset's format."""


@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset is, where it comes from and under which licence (see the module doc)."""

    name: str
    description: str
    license: str
    attribution: str
    source: str  # where to get it (shipped files: where they were taken from)
    columns: tuple[str, ...] = ()  # the CSV header (or the documented column order of a headerless file)
    header: bool = True
    file: str | None = None  # shipped: the file inside sysgym/data/
    sha256: str | None = None  # shipped: the file's checksum
    rows: int | None = None  # shipped: data rows (header excluded)
    readers: str = ""  # which sysgym loader reads it
    json_lines: bool = False  # JSON lines with these fields are accepted too

    @property
    def shipped(self) -> bool:
        return self.file is not None

    def describe(self) -> dict[str, Any]:
        out = {"name": self.name, "description": self.description, "shipped": self.shipped,
               "license": self.license, "attribution": self.attribution, "source": self.source,
               "columns": ", ".join(self.columns) + ("" if self.header else " (no header row)"),
               "read by": self.readers}
        if self.shipped:
            out.update({"file": str(_package_file(self.file)), "sha256": self.sha256, "rows": self.rows})
        else:
            out["how to use"] = f"download it from the source, then sysgym.datasets.load({self.name!r}, path=...)"
        return out


_CATALOGUE: tuple[DatasetInfo, ...] = (
    DatasetInfo(
        name="azure-conv-2023",
        description="Azure LLM inference trace, conversation service, one hour of 11 November 2023: 19,366 requests "
                    "(~5.5 req/s, near-Poisson arrivals)",
        license="CC-BY (the trace: AzurePublicDataset's attribution licence); MIT (vidur's reformatting)",
        attribution=_AZURE_2023_ATTRIBUTION,
        source="https://github.com/Azure/AzurePublicDataset (AzureLLMInferenceTrace_conv.csv); this copy: "
               "https://github.com/microsoft/vidur data/processed_traces/",
        columns=("arrived_at", "num_prefill_tokens", "num_decode_tokens"),
        file="azure_llm_2023/conv.csv",
        sha256="439e4138b7e384f316de614c071f7162be05b8af0cef866f82faacd1b0472249",
        rows=19366,
        readers="sysgym.envs.llm_serving.load_trace(path, format='azure'); `sysgym serve-sim --trace PATH`",
    ),
    DatasetInfo(
        name="azure-code-2023",
        description="Azure LLM inference trace, coding service, one hour of 11 November 2023: 8,819 requests "
                    "(~2.6 req/s, very bursty: inter-arrival CV ~13)",
        license="CC-BY (the trace: AzurePublicDataset's attribution licence); MIT (vidur's reformatting)",
        attribution=_AZURE_2023_ATTRIBUTION,
        source="https://github.com/Azure/AzurePublicDataset (AzureLLMInferenceTrace_code.csv); this copy: "
               "https://github.com/microsoft/vidur data/processed_traces/",
        columns=("arrived_at", "num_prefill_tokens", "num_decode_tokens"),
        file="azure_llm_2023/code.csv",
        sha256="f266b907d109d471c61283ab69771c17ad79a18b33ff6e96aa546346f52767a6",
        rows=8819,
        readers="sysgym.envs.llm_serving.load_trace(path, format='azure'); `sysgym serve-sim --trace PATH`",
    ),
    DatasetInfo(
        name="burstgpt",
        description="BurstGPT: ChatGPT and GPT-4 requests served by Azure OpenAI over months (Wang et al., "
                    "arXiv 2401.17644); files of 1.4 M to 3.9 M rows",
        license="see the repository's terms (no licence file at its root when this entry was written)",
        attribution="Yuxin Wang et al., \"BurstGPT: A Real-world Workload Dataset to Optimize LLM Serving "
                    "Systems\", arXiv 2401.17644",
        source="https://github.com/HPMLL/BurstGPT (data/BurstGPT_1.csv, BurstGPT_without_fails_1.csv, ...; "
               "also its GitHub releases)",
        columns=("Timestamp", "Model", "Request tokens", "Response tokens", "Total tokens", "Log Type"),
        readers="sysgym.envs.llm_serving.load_trace(path, format='burstgpt')",
    ),
    DatasetInfo(
        name="alibaba-2018",
        description="Alibaba cluster-trace-v2018: 8 days of about 4,000 machines; batch_task.csv holds the batch "
                    "jobs' task DAGs",
        license="Alibaba Cluster Trace Program terms (use for research or study purposes; see its README)",
        attribution="Alibaba Cluster Trace Program, cluster-trace-v2018",
        source="https://github.com/alibaba/clusterdata/blob/master/cluster-trace-v2018/trace_2018.md (download "
               "link after a short survey; verify with the SHA256 sums listed there)",
        columns=("task_name", "instance_num", "job_name", "task_type", "status", "start_time", "end_time",
                 "plan_cpu", "plan_mem"),
        header=False,
        readers="sysgym.envs.job_sched load(path) / load_trace(path, format='alibaba2018'); "
                "`sysgym job-sched --trace PATH`",
    ),
    DatasetInfo(
        name="google-2019",
        description="Google cluster-usage traces v3 (ClusterData 2019): eight Borg cells for May 2019; sysgym reads "
                    "a slice of the instance_events table",
        license="CC-BY 4.0",
        attribution="Google cluster-usage traces v3 (clusterdata-2019), John Wilkes et al.",
        source="https://github.com/google/cluster-data/blob/master/ClusterData2019.md (BigQuery or the "
               "downloadable files described in 'Google cluster-usage traces v3')",
        columns=("time", "type", "collection_id", "instance_index"),
        json_lines=True,
        readers="sysgym.envs.job_sched load(path) / load_trace(path, format='google2019')",
    ),
    DatasetInfo(
        name="azure-functions-2019",
        description="Azure Functions trace 2019 (Shahrad et al., ATC'20): 14 days of per-minute invocation counts, "
                    "execution-time percentiles and app memory",
        license="CC-BY (AzurePublicDataset's attribution licence)",
        attribution="Mohammad Shahrad et al., \"Serverless in the Wild: Characterizing and Optimizing the Serverless "
                    "Workload at a Large Cloud Provider\", USENIX ATC 2020",
        source="https://github.com/Azure/AzurePublicDataset/blob/master/AzureFunctionsDataset2019.md "
               "(invocations_per_function_md.anon.d01.csv ... d14)",
        columns=("HashOwner", "HashApp", "HashFunction", "Trigger"),
        readers="the serverless family's loader (issue 24)",
    ),
    DatasetInfo(
        name="huawei-2025",
        description="Huawei Public Cloud Trace 2025 (Joosen et al., EuroSys'25): 31 days of serverless cold starts "
                    "in five regions, request tables and per-minute time series",
        license="see the repository's terms",
        attribution="Artjom Joosen et al., \"Serverless Cold Starts and Where to Find Them\", EuroSys 2025",
        source="https://github.com/sir-lab/data-release/blob/main/README_data_release_2025.md",
        readers="the serverless family's loader (issue 24)",
    ),
)
_BY_NAME = {d.name: d for d in _CATALOGUE}


def list(external: bool = False) -> builtins.list[str]:  # noqa: A001 - public name fixed by the API
    """The shipped datasets (loadable by name alone); with `external`, also the traces read from a path."""
    return sorted(d.name for d in _CATALOGUE if external or d.shipped)


def info(name: str) -> DatasetInfo:
    """A dataset's description, licence, attribution and source; an unknown name lists the known ones."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise UnknownNameError("dataset", name, _BY_NAME) from None


def _package_file(relative: str) -> Path:
    return Path(str(resources.files("sysgym").joinpath("data", *relative.split("/"))))


def sha256_of(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@functools.lru_cache(maxsize=None)
def _verified(file: str, sha256: str, mtime_ns: int, size: int) -> bool:
    return sha256_of(_package_file(file)) == sha256


def path(name: str) -> Path:
    """The shipped file of dataset `name`, its checksum verified (a changed file raises `DatasetError`)."""
    return _shipped_path(name)


def _shipped_path(name: str) -> Path:
    d = info(name)
    if not d.shipped:
        raise DatasetError(f"dataset {name!r} is not shipped with sysgym (too large or not redistributable): "
                           f"get it from {d.source}, then sysgym.datasets.load({name!r}, path=...)")
    file = _package_file(d.file)
    try:
        st = file.stat()
    except OSError:
        raise DatasetError(f"dataset {name!r}: its file {file} is missing from this installation") from None
    if not _verified(d.file, d.sha256, st.st_mtime_ns, st.st_size):
        raise DatasetError(f"dataset {name!r}: {file} does not match its checksum (sha256 {d.sha256}); the "
                           "installation is damaged or the file was edited")
    return file


def resolve(name_or_path: str | os.PathLike) -> Path:
    """A shipped dataset's verified file for its name, else the argument as a path (for `--trace` options)."""
    text = str(name_or_path)
    if text in _BY_NAME and _BY_NAME[text].shipped:
        return _shipped_path(text)
    return Path(name_or_path)


@dataclass(frozen=True)
class Dataset:
    """A dataset file ready to read: `path` (verified), `info`, `read()`."""

    info: DatasetInfo
    path: Path

    @property
    def name(self) -> str:
        return self.info.name

    def read(self, max_rows: int | None = None) -> dict[str, np.ndarray]:
        """The file's columns (numbers as float64 arrays, anything else as str arrays)."""
        return read_csv_columns(self.path, self.info.columns if not self.info.header else None, max_rows)


def _check_columns(d: DatasetInfo, file: Path) -> None:
    try:
        with open(file, encoding="utf-8", newline="") as fh:
            line = fh.readline()
    except UnicodeDecodeError as exc:
        raise TraceFormatError(f"{file}: not UTF-8 text (byte {exc.start}); is it a {d.name} CSV file?") from None
    if not line.strip():
        raise TraceFormatError(f"{file}: empty first line, not a {d.name} trace")
    if d.json_lines and line.lstrip().startswith("{"):
        try:
            fields = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TraceFormatError(f"{file}:1: not a JSON object ({exc.msg})") from None
        missing = [c for c in d.columns if c not in fields]
        if missing:
            raise TraceFormatError(f"{file}:1: lacks {d.name} field(s) {', '.join(missing)}")
        return
    first = next(csv.reader([line]))
    if d.header and d.columns:
        missing = [c for c in d.columns if c not in [x.strip() for x in first]]
        if missing:
            raise TraceFormatError(f"{file}:1: header lacks {d.name} column(s) {', '.join(missing)} "
                                   f"(expected {', '.join(d.columns)})")
    elif d.columns and len(first) != len(d.columns):
        raise TraceFormatError(f"{file}:1: {len(first)} columns; {d.name} rows have {len(d.columns)} "
                               f"({', '.join(d.columns)})")


def load(name: str, path: str | os.PathLike | None = None) -> Dataset:  # noqa: A002 - `path` reads naturally
    """A dataset by name: shipped ones from the package (checksum verified), the others from `path` (its first
    row checked against the documented columns). An unknown name lists the known ones."""
    d = info(name)
    if path is None:
        return Dataset(d, _shipped_path(name))
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"no {name} file at {file} (get it from {d.source})")
    if d.shipped and sha256_of(file) != d.sha256:
        raise DatasetError(f"{file} is not the shipped {name} file (sha256 differs from {d.sha256})")
    _check_columns(d, file)
    return Dataset(d, file)


def read_csv_columns(file: str | os.PathLike, columns: tuple[str, ...] | None = None,
                     max_rows: int | None = None) -> dict[str, np.ndarray]:
    """A CSV file's columns (header row unless `columns` names them); errors name the file and line."""
    file = Path(file)
    values: dict[str, builtins.list[str]] = {}
    try:
        with open(file, encoding="utf-8", newline="") as fh:
            reader = csv.reader(fh)
            names = builtins.list(columns) if columns else [c.strip() for c in next(reader, [])]
            values = {c: [] for c in names}
            for lineno, row in enumerate(reader, 1 if columns else 2):
                if max_rows is not None and len(next(iter(values.values()), [])) >= max_rows:
                    break
                if not row:
                    continue
                if len(row) != len(names):
                    raise TraceFormatError(f"{file}:{lineno}: {len(row)} fields, expected {len(names)} "
                                           f"({', '.join(names)})")
                for c, v in zip(names, row):
                    values[c].append(v)
    except UnicodeDecodeError as exc:
        raise TraceFormatError(f"{file}: not UTF-8 text (byte {exc.start})") from None
    out = {}
    for c, vs in values.items():
        try:
            out[c] = np.array(vs, dtype=np.float64)
        except ValueError:
            out[c] = np.array(vs, dtype=str)
    return out


__all__ = ["Dataset", "DatasetError", "DatasetInfo", "info", "list", "load", "path", "read_csv_columns", "resolve",
           "sha256_of"]
