"""Request traces for LLM serving: a columnar `Trace`, loaders for public trace formats (given a path: sysgym
ships no trace), generators.

A request has an arrival time (s), prompt tokens, output tokens (the number of tokens the model generates,
the first of them produced by the prefill), and optionally a client/tenant id, a session id and a priority.

Loaders (`load_trace(path, format=...)`):
* ``azure``: the Azure LLM inference traces of November 2023 (Patel et al., Splitwise, ISCA'24;
  Azure/AzurePublicDataset ``AzureLLMInferenceTrace_{conv,code}.csv``), either in the original columns
  ``TIMESTAMP, ContextTokens, GeneratedTokens`` or in vidur's reformatting ``arrived_at,
  num_prefill_tokens, num_decode_tokens`` (seconds from the first request).
* ``burstgpt``: BurstGPT (Wang et al., arXiv 2401.17644) CSV with columns ``Timestamp, Model,
  Request tokens, Response tokens, Total tokens, Log Type``; failed requests (0 response tokens) are kept
  out, the model name becomes the client id.

Generators (all seeded): Poisson arrivals, Gamma arrivals with a given inter-arrival CV (burstiness,
as BurstGPT fits them), lengths drawn from a fitted distribution (`fit_lengths`), and multi-tenant mixes.
"""
from __future__ import annotations

import csv
import hashlib
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from sysgym.errors import InvalidInstanceError, TraceFormatError, UnknownNameError

FORMATS = ("azure", "burstgpt")


@dataclass(frozen=True, eq=False)
class Trace:
    """A columnar, immutable request trace (sorted by arrival). Arrays are read-only."""

    arrival: np.ndarray  # (N,) seconds, non-decreasing
    prompt: np.ndarray  # (N,) prompt (prefill) tokens, >= 1
    output: np.ndarray  # (N,) output tokens, >= 1 (the first comes out of the prefill)
    client: np.ndarray | None = None  # (N,) int tenant/client id
    session: np.ndarray | None = None  # (N,) int session id (-1: none)
    priority: np.ndarray | None = None  # (N,) int, smaller = more urgent
    name: str = "trace"
    client_names: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(np.asarray(self.arrival))
        conv = {"arrival": np.float64, "prompt": np.int64, "output": np.int64}
        for key, dtype in conv.items():
            arr = np.array(getattr(self, key), dtype=dtype).reshape(-1)
            if len(arr) != n:
                raise InvalidInstanceError(f"{self.name}: {key} has {len(arr)} entries, arrival has {n}")
            arr.setflags(write=False)
            object.__setattr__(self, key, arr)
        for key, default in (("client", 0), ("session", -1), ("priority", 0)):
            value = getattr(self, key)
            arr = np.full(n, default, np.int64) if value is None else np.array(value, np.int64).reshape(-1)
            if len(arr) != n:
                raise InvalidInstanceError(f"{self.name}: {key} has {len(arr)} entries, arrival has {n}")
            arr.setflags(write=False)
            object.__setattr__(self, key, arr)
        if n and (not np.all(np.isfinite(self.arrival)) or (self.arrival < 0).any()):
            raise InvalidInstanceError(f"{self.name}: arrival times must be finite and >= 0")
        if n and np.any(np.diff(self.arrival) < 0):
            bad = int(np.argmax(np.diff(self.arrival) < 0)) + 1
            raise InvalidInstanceError(f"{self.name}: arrivals are not sorted (request {bad} arrives before "
                                       f"request {bad - 1}); use Trace.sorted(...)")
        if n and (self.prompt < 1).any():
            raise InvalidInstanceError(f"{self.name}: request {int(np.argmax(self.prompt < 1))} has no prompt tokens")
        if n and (self.output < 1).any():
            raise InvalidInstanceError(f"{self.name}: request {int(np.argmax(self.output < 1))} has no output tokens")

    @classmethod
    def sorted(cls, arrival, prompt, output, client=None, session=None, priority=None, **kw) -> Trace:
        """Build a trace from unsorted columns (stable sort by arrival)."""
        order = np.argsort(np.asarray(arrival, float), kind="stable")

        def pick(a):
            return None if a is None else np.asarray(a)[order]

        return cls(np.asarray(arrival, float)[order], np.asarray(prompt)[order], np.asarray(output)[order],
                   pick(client), pick(session), pick(priority), **kw)

    def __len__(self) -> int:
        return len(self.arrival)

    @property
    def num_clients(self) -> int:
        return int(self.client.max()) + 1 if len(self) else 0

    @property
    def duration(self) -> float:
        return float(self.arrival[-1] - self.arrival[0]) if len(self) > 1 else 0.0

    def __getitem__(self, idx) -> Trace:
        """A sub-trace (slice or index array); arrival times are kept."""
        sel = np.arange(len(self))[idx]
        sel = np.atleast_1d(sel)
        return Trace(self.arrival[sel], self.prompt[sel], self.output[sel], self.client[sel], self.session[sel],
                     self.priority[sel], name=f"{self.name}[{len(sel)}]", client_names=self.client_names,
                     meta=dict(self.meta))

    def scale_rate(self, factor: float) -> Trace:
        """The same requests arriving `factor` times faster (arrival times divided by factor)."""
        if not factor > 0:
            raise ValueError(f"rate factor must be > 0, got {factor}")
        return Trace(self.arrival / factor, self.prompt, self.output, self.client, self.session, self.priority,
                     name=f"{self.name}@x{factor:g}", client_names=self.client_names, meta=dict(self.meta))

    def requests(self) -> list[dict[str, Any]]:
        """Row view: one dict per request."""
        return [{"id": i, "arrival": float(self.arrival[i]), "prompt_tokens": int(self.prompt[i]),
                 "output_tokens": int(self.output[i]), "client": int(self.client[i]),
                 "session": int(self.session[i]), "priority": int(self.priority[i])} for i in range(len(self))]

    def stats(self) -> dict[str, float]:
        ia = np.diff(self.arrival)
        return {"num_requests": len(self), "duration_s": self.duration,
                "rate_rps": (len(self) - 1) / self.duration if self.duration > 0 else math.inf,
                "mean_prompt": float(self.prompt.mean()) if len(self) else 0.0,
                "mean_output": float(self.output.mean()) if len(self) else 0.0,
                "interarrival_cv": float(ia.std() / ia.mean()) if len(ia) > 1 and ia.mean() > 0 else 0.0}

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "arrival": self.arrival.tolist(), "prompt": self.prompt.tolist(),
                "output": self.output.tolist(), "client": self.client.tolist(), "session": self.session.tolist(),
                "priority": self.priority.tolist(), "client_names": list(self.client_names)}

    def digest(self) -> str:
        h = hashlib.sha256()
        for arr in (self.arrival, self.prompt, self.output, self.client, self.session, self.priority):
            h.update(np.ascontiguousarray(arr).tobytes())
        return h.hexdigest()[:16]


def as_trace(requests) -> Trace:
    """Accept a Trace, a list of request dicts (keys as `Trace.requests()`), or an (N, 3) array."""
    if isinstance(requests, Trace):
        return requests
    if isinstance(requests, np.ndarray):
        if requests.ndim != 2 or requests.shape[1] < 3:
            raise InvalidInstanceError("a request array needs columns (arrival, prompt_tokens, output_tokens)")
        return Trace.sorted(requests[:, 0], requests[:, 1], requests[:, 2])
    rows = list(requests)
    try:
        cols = {k: [r[k] for r in rows] for k in ("arrival", "prompt_tokens", "output_tokens")}
    except (KeyError, TypeError) as exc:
        raise InvalidInstanceError(f"each request needs arrival, prompt_tokens, output_tokens: {exc}") from None
    extra = {k: [r.get(k, d) for r in rows] for k, d in (("client", 0), ("session", -1), ("priority", 0))}
    return Trace.sorted(cols["arrival"], cols["prompt_tokens"], cols["output_tokens"], **extra)


# -- loaders --------------------------------------------------------------------------------------------

_AZURE_COLUMNS = (("arrived_at", "num_prefill_tokens", "num_decode_tokens"),
                  ("TIMESTAMP", "ContextTokens", "GeneratedTokens"))
_BURST_COLUMNS = ("Timestamp", "Model", "Request tokens", "Response tokens", "Total tokens", "Log Type")


def _num(path: Path, line: int, column: str, text: str, kind=float, minimum: float | None = None):
    try:
        value = kind(text)
    except (TypeError, ValueError):
        raise TraceFormatError(f"{path}, line {line}, column {column!r}: {text!r} is not a "
                               f"{'number' if kind is float else 'whole number'}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise TraceFormatError(f"{path}, line {line}, column {column!r}: {text!r} is not finite")
    if minimum is not None and value < minimum:
        raise TraceFormatError(f"{path}, line {line}, column {column!r}: {value} is below {minimum}")
    return value


def _int(text: str) -> int:
    value = float(text)
    if value != int(value):
        raise ValueError(text)
    return int(value)


def _parse_time(path: Path, line: int, column: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    try:  # Azure's original: "2023-11-16 18:15:46.6805900" (7 fractional digits)
        head, _, frac = text.strip().partition(".")
        base = datetime.fromisoformat(head)
        return base.timestamp() + (float("0." + frac) if frac else 0.0)
    except ValueError:
        raise TraceFormatError(f"{path}, line {line}, column {column!r}: {text!r} is neither seconds nor a "
                               "timestamp") from None


def load_trace(path: str | Path, format: str = "azure", *, limit: int | None = None) -> Trace:  # noqa: A002
    """Load a request trace; a malformed row raises TraceFormatError naming the file, line and column.

    Arrival times are shifted so the first request arrives at 0. `limit` keeps the first N requests.
    """
    if format not in FORMATS:
        raise UnknownNameError("trace format", format, FORMATS)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"trace file {path} does not exist")
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise TraceFormatError(f"{path}: empty file (no header)") from None
        if format == "azure":
            cols = next((c for c in _AZURE_COLUMNS if all(x in header for x in c)), None)
            if cols is None:
                raise TraceFormatError(f"{path}, line 1: header {header} lacks the Azure columns "
                                       f"{list(_AZURE_COLUMNS[0])} (or {list(_AZURE_COLUMNS[1])})")
        else:
            missing = [c for c in _BURST_COLUMNS if c not in header]
            if missing:
                raise TraceFormatError(f"{path}, line 1: header lacks BurstGPT column(s) {missing}")
            cols = _BURST_COLUMNS
        idx = [header.index(c) for c in cols]
        arrival, prompt, output, client = [], [], [], []
        models: dict[str, int] = {}
        for line_no, row in enumerate(reader, start=2):
            if not row or all(not x.strip() for x in row):
                continue
            if len(row) < len(header):
                raise TraceFormatError(f"{path}, line {line_no}: {len(row)} fields, header has {len(header)}")
            t = _parse_time(path, line_no, cols[0], row[idx[0]].strip())
            if format == "azure":
                p = _num(path, line_no, cols[1], row[idx[1]].strip(), _int, 1)
                o = _num(path, line_no, cols[2], row[idx[2]].strip(), _int, 0)
                c = 0
            else:
                p = _num(path, line_no, cols[2], row[idx[2]].strip(), _int, 0)
                o = _num(path, line_no, cols[3], row[idx[3]].strip(), _int, 0)
                _num(path, line_no, cols[4], row[idx[4]].strip(), _int, 0)
                if row[idx[5]].strip() == "":
                    raise TraceFormatError(f"{path}, line {line_no}, column 'Log Type': empty")
                if o == 0 or p == 0:
                    continue  # BurstGPT logs failed requests with 0 response tokens
                c = models.setdefault(row[idx[1]].strip(), len(models))
            arrival.append(t)
            prompt.append(p)
            output.append(max(o, 1))  # a request always yields its first token
            client.append(c)
            if limit is not None and len(arrival) >= limit:
                break
    if not arrival:
        raise TraceFormatError(f"{path}: no requests")
    arr = np.asarray(arrival, float)
    if np.any(np.diff(arr) < 0):
        order = np.argsort(arr, kind="stable")
    else:
        order = np.arange(len(arr))
    arr = arr[order] - arr[order][0]
    names = tuple(sorted(models, key=models.get)) if models else ()
    return Trace(arr, np.asarray(prompt)[order], np.asarray(output)[order], np.asarray(client)[order],
                 name=f"file:{path}", client_names=names,
                 meta={"format": format, "path": str(path)})


# -- generators -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LengthModel:
    """Log-normal prompt and output lengths with a correlation, clipped to [lo, hi] (fitted on a trace).

    Log-normal fits of LLM request lengths: BurstGPT (Wang et al. 2024, Sec. 3) reports Zipf/log-normal
    shaped request and response lengths; Splitwise's Azure traces are heavy-tailed in the same way.
    """

    prompt_mu: float
    prompt_sigma: float
    output_mu: float
    output_sigma: float
    rho: float = 0.0
    prompt_range: tuple[int, int] = (1, 32768)
    output_range: tuple[int, int] = (1, 8192)
    empirical_prompt: tuple[int, ...] = ()
    empirical_output: tuple[int, ...] = ()

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        if self.empirical_prompt:  # resample the trace's own (prompt, output) pairs
            i = rng.integers(len(self.empirical_prompt), size=n)
            return np.asarray(self.empirical_prompt)[i], np.asarray(self.empirical_output)[i]
        z = rng.standard_normal((n, 2))
        z[:, 1] = self.rho * z[:, 0] + math.sqrt(max(0.0, 1 - self.rho ** 2)) * z[:, 1]
        p = np.exp(self.prompt_mu + self.prompt_sigma * z[:, 0])
        o = np.exp(self.output_mu + self.output_sigma * z[:, 1])
        p = np.clip(np.rint(p), *self.prompt_range).astype(np.int64)
        o = np.clip(np.rint(o), *self.output_range).astype(np.int64)
        return p, o


def fit_lengths(trace: Trace, *, method: str = "lognormal") -> LengthModel:
    """Fit a length model to a trace. `lognormal` matches the means exactly (moment-matched in log
    space with the sample variance of log lengths, mean corrected for clipping); `empirical`
    resamples the trace's pairs."""
    if method == "empirical":
        return LengthModel(0, 0, 0, 0, empirical_prompt=tuple(int(x) for x in trace.prompt),
                           empirical_output=tuple(int(x) for x in trace.output))
    if method != "lognormal":
        raise UnknownNameError("length-fit method", method, ("lognormal", "empirical"))
    lp, lo = np.log(trace.prompt.astype(float)), np.log(trace.output.astype(float))
    sp, so = float(lp.std()), float(lo.std())
    # mu chosen so that E[exp(mu + sigma Z)] equals the trace's mean length (log-normal mean formula).
    mp = math.log(float(trace.prompt.mean())) - sp ** 2 / 2
    mo = math.log(float(trace.output.mean())) - so ** 2 / 2
    rho = float(np.corrcoef(lp, lo)[0, 1]) if len(trace) > 2 and sp > 0 and so > 0 else 0.0
    return LengthModel(mp, sp, mo, so, rho, (int(trace.prompt.min()), int(trace.prompt.max())),
                       (int(trace.output.min()), int(trace.output.max())))


def arrivals(rng: np.random.Generator, n: int, rate: float, *, process: str = "poisson", cv: float = 1.0,
             start: float = 0.0) -> np.ndarray:
    """`n` arrival times at mean `rate` req/s. `gamma` draws inter-arrivals with coefficient of variation
    `cv` (shape 1/cv^2; cv=1 is Poisson; BurstGPT fits Gamma inter-arrivals, Wang et al. 2024 Sec. 4)."""
    if not rate > 0:
        raise ValueError(f"arrival rate must be > 0, got {rate}")
    if process == "poisson":
        gaps = rng.exponential(1.0 / rate, size=n)
    elif process == "gamma":
        if not cv > 0:
            raise ValueError(f"gamma arrivals need cv > 0, got {cv}")
        shape = 1.0 / cv ** 2
        gaps = rng.gamma(shape, 1.0 / (rate * shape), size=n)
    else:
        raise UnknownNameError("arrival process", process, ("poisson", "gamma"))
    if n:
        gaps[0] = 0.0
    return start + np.cumsum(gaps)


# Length defaults: log-normal fitted (`fit_lengths`) to the Azure LLM inference 2023 conversation trace
# (Splitwise, ISCA'24; Azure/AzurePublicDataset `AzureLLMInferenceTrace_conv.csv`: mean prompt 1155, mean output
# 211 tokens).
AZURE_CONV_LENGTHS = LengthModel(prompt_mu=6.5663, prompt_sigma=0.9852, output_mu=4.9835, output_sigma=0.8590,
                                 rho=0.0875, prompt_range=(2, 14050), output_range=(7, 1000))
# Azure code trace: mean prompt 2048, mean output 28 tokens (same source).
AZURE_CODE_LENGTHS = LengthModel(prompt_mu=6.6995, prompt_sigma=1.3602, output_mu=2.9691, output_sigma=0.8472,
                                 rho=-0.0045, prompt_range=(3, 7437), output_range=(6, 1899))
LENGTH_MODELS = {"azure_conv": AZURE_CONV_LENGTHS, "azure_code": AZURE_CODE_LENGTHS}


def generate_trace(*, num_requests: int = 1000, rate: float = 5.5, process: str = "poisson", cv: float = 1.0,
                   lengths: str | LengthModel = "azure_conv", num_clients: int = 1,
                   client_weights=None, client_rates=None, max_prompt: int | None = None,
                   max_output: int | None = None, seed: int = 0, name: str | None = None) -> Trace:
    """A synthetic trace. Multi-tenant: `num_clients` clients either sharing the arrival process in
    proportion to `client_weights`, or each with its own rate (`client_rates`, req/s) and process."""
    if isinstance(lengths, str):
        if lengths not in LENGTH_MODELS:
            raise UnknownNameError("length model", lengths, LENGTH_MODELS)
        lengths = LENGTH_MODELS[lengths]
    rng = np.random.default_rng([int(seed), 0x4C4C4D])  # "LLM": keeps this stream apart from others
    if client_rates is not None:
        rates = np.asarray(client_rates, float)
        if len(rates) != num_clients:
            raise InvalidInstanceError(f"client_rates has {len(rates)} entries for {num_clients} clients")
        share = np.maximum(1, np.rint(num_requests * rates / rates.sum())).astype(int)
        t = np.concatenate([arrivals(rng, int(k), float(r), process=process, cv=cv) for k, r in zip(share, rates)])
        c = np.concatenate([np.full(int(k), i) for i, k in enumerate(share)])
    else:
        t = arrivals(rng, num_requests, rate, process=process, cv=cv)
        w = np.ones(num_clients) if client_weights is None else np.asarray(client_weights, float)
        if len(w) != num_clients or (w < 0).any() or w.sum() <= 0:
            raise InvalidInstanceError(f"client_weights needs {num_clients} non-negative weights")
        c = rng.choice(num_clients, size=num_requests, p=w / w.sum())
    p, o = lengths.sample(rng, len(t))
    if max_prompt is not None:
        p = np.minimum(p, max_prompt)
    if max_output is not None:
        o = np.minimum(o, max_output)
    return Trace.sorted(t, p, o, client=c, name=name or f"synthetic(seed={seed})",
                        meta={"rate": rate, "process": process, "cv": cv})
