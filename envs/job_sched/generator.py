"""Seeded generator of multi-user Spark-like DAG workloads, calibrated on Decima's TPC-H traces.

Sources of every constant:
* DAG shapes, tasks per stage and task-duration distributions: Decima's TPC-H traces (Mao et al., "Learning
  Scheduling Algorithms for Data Processing Clusters", SIGCOMM'19; github.com/hongzimao/decima-sim commit
  c010dd7, `spark_env/tpch/`): 22 queries x 7 input sizes (2g ... 100g), measured on Spark. We ship their facts
  as `data/tpch_decima.json` (made by `data/extract_tpch.py`): per stage the task count, 11 quantiles of the
  warm task duration and the mean duration on a fresh executor. A task's duration is drawn by inverse-CDF
  from the stage's quantiles (linear between deciles); the warm-up of a fresh executor is the stage's fresh
  mean minus its warm mean (>= 0).
* Arrivals: Poisson, mean inter-arrival 25 s with 100 executors (decima-sim `param.py --stream_interval
  25000` ms, `--exec_cap 100`), scaled by 100 / num_executors so the load stays Decima's for other cluster
  sizes; Decima also starts with `--num_init_dags 10` jobs at t = 0 (`initial_jobs`).
* Moving delay 2 s (decima-sim `--moving_delay 2000` ms).
* Multi-user mixes ("heterogeneous", the UWFQ paper's setting, arXiv 2510.15485 section 5): heavy users submit
  many small jobs (2g/5g inputs) and light users few large ones (50g-100g); `heavy_share` of the jobs (default
  0.8) come from the heavy users. "uniform": every user draws Decima's mix (uniform query and size).

Versions (`GENERATOR`; kit rule: a version never changes what it makes):
* v0 (specs without a version suffix, `job_sched/multiuser?seed=0`): the instances do not name their setting.
* v1 (`job_sched-v1/multiuser?seed=0&setting=shared_app`): every instance names its setting (`shared_app`, UWFQ's
  one shared application, delays 0; `multi_app`, Decima's executor model, 2 s moving delay and warm-up), a field
  of the instance and a parameter its spec always shows. Each preset has a setting; `setting=...` switches it
  (`moving_delay_s` and `warmup_scale` then default to the setting's values). Apart from the field and the name,
  a v1 instance is the v0 instance of the same parameters: the same jobs, arrivals, durations and delays.
"""
from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from sysgym.envs.job_sched.instance import JobInstance, build
from sysgym.errors import InvalidArgumentError, InvalidInstanceError, UnknownNameError
from sysgym.generators import Generator
from sysgym.specs import format_spec

DATA = Path(__file__).with_name("data") / "tpch_decima.json"
SIZES = ("2g", "5g", "10g", "20g", "50g", "80g", "100g")  # decima-sim --tpch_size
NUM_QUERIES = 22  # decima-sim --tpch_num
DECIMA_EXECUTORS = 100  # decima-sim --exec_cap
DECIMA_INTERARRIVAL_S = 25.0  # decima-sim --stream_interval 25000 ms (with 100 executors)
DECIMA_MOVING_DELAY_S = 2.0  # decima-sim --moving_delay 2000 ms
DECIMA_INIT_DAGS = 10  # decima-sim --num_init_dags
SMALL_SIZES = ("2g", "5g")
LARGE_SIZES = ("50g", "80g", "100g")

# v0's presets, frozen (v0 must keep making what it made).
PRESETS_V0: dict[str, dict[str, Any]] = {
    # CP-SAT proves optimality here: 3 jobs of <= 4 stages, tasks coalesced to <= 2 per stage.
    "tiny": {"num_executors": 2, "num_users": 2, "num_jobs": 3, "sizes": ["2g"], "max_stages": 4,
             "max_tasks_per_stage": 2, "moving_delay_s": 0.0, "warmup_scale": 0.0, "mix": "uniform",
             "mean_interarrival_s": 3.0},
    # Unit tests and the env's default: small cluster, light users and heavy users.
    "small": {"num_executors": 10, "num_users": 3, "num_jobs": 12, "sizes": ["2g", "5g", "10g"],
              "max_tasks_per_stage": 20, "mix": "heterogeneous"},
    # The UWFQ setting (arXiv 2510.15485): one long-running Spark application shared by users, so a slot moves
    # between jobs with no executor move and no JVM warm-up (delays 0); heterogeneous users; 3.5 x Decima's
    # arrival rate puts executor utilisation near 0.65 (contention, still stable).
    "multiuser": {"num_executors": 50, "num_users": 4, "num_jobs": 100, "mix": "heterogeneous", "load_scale": 3.5,
                  "moving_delay_s": 0.0, "warmup_scale": 0.0},
    # Decima's setting: 100 executors, 10 initial jobs then a Poisson stream.
    "decima": {"num_executors": DECIMA_EXECUTORS, "num_users": 1, "num_jobs": 100, "mix": "uniform",
               "initial_jobs": DECIMA_INIT_DAGS},
}
# (`preset="custom"`, every parameter explicit, is the Generator's: the spec of an instance made without a preset.)

SETTINGS = ("shared_app", "multi_app")
# Each setting's delays: shared_app = UWFQ's one long-running application (a slot changes job for free);
# multi_app = Decima's executor model (decima-sim --moving_delay 2000 ms, fresh-executor warm-up from its traces).
SETTING_DELAYS = {"shared_app": {"moving_delay_s": 0.0, "warmup_scale": 0.0},
                  "multi_app": {"moving_delay_s": DECIMA_MOVING_DELAY_S, "warmup_scale": 1.0}}
# v1's presets: v0's, each naming its setting instead of spelling out the delays (the same delays result).
PRESETS: dict[str, dict[str, Any]] = {
    name: {**{k: v for k, v in preset.items() if k not in ("moving_delay_s", "warmup_scale")},
           "setting": "shared_app" if preset.get("moving_delay_s", DECIMA_MOVING_DELAY_S) == 0 else "multi_app"}
    for name, preset in PRESETS_V0.items()}



@lru_cache(maxsize=1)
def tpch_table() -> dict[str, Any]:
    return json.loads(DATA.read_text())


def _sample_durations(rng: np.random.Generator, q_ms: list[int], n: int) -> np.ndarray:
    u = rng.random(n) * 10.0
    q = np.asarray(q_ms, float)
    lo = np.floor(u).astype(int)
    ms = q[lo] + (q[np.minimum(lo + 1, 10)] - q[lo]) * (u - lo)
    return np.maximum(1.0, np.rint(ms)) / 1000.0


def tpch_job(rng: np.random.Generator, query: int, size: str, *, max_tasks_per_stage: int | None = None,
             warmup_scale: float = 1.0) -> dict[str, Any]:
    """One TPC-H job (Decima's measured DAG), task durations sampled; optionally tasks coalesced so a stage has
    at most `max_tasks_per_stage` tasks (total work kept), for small CP-SAT instances."""
    table = tpch_table()["sizes"]
    if size not in table:
        raise UnknownNameError("TPC-H input size", size, table)
    if str(query) not in table[size]:
        raise UnknownNameError("TPC-H query", str(query), table[size])
    spec = table[size][str(query)]
    stages, warm = [], []
    for st in spec["stages"]:
        d = _sample_durations(rng, st["q_ms"], st["num_tasks"])
        if max_tasks_per_stage is not None and len(d) > max_tasks_per_stage:
            groups = np.array_split(d, max_tasks_per_stage)
            d = np.array([np.round(g.sum(), 3) for g in groups])
        stages.append(d.tolist())
        q = np.asarray(st["q_ms"], float)
        warm_mean = float(((q[:-1] + q[1:]) / 2).mean())  # mean of the piecewise-linear quantile function
        warm.append(round(warmup_scale * max(0.0, st["fresh_mean_ms"] - warm_mean) / 1000.0, 3))
    return {"stages": stages, "edges": spec["edges"], "warmup_s": warm, "label": f"tpch-{size}-q{query}"}


_KNOWN = {"num_executors", "num_users", "num_jobs", "mix", "heavy_users", "heavy_share", "sizes", "small_sizes",
          "large_sizes", "queries", "max_stages", "max_tasks_per_stage", "mean_interarrival_s", "load_scale",
          "initial_jobs", "moving_delay_s", "warmup_scale", "horizon_s"}


def _params(presets: dict[str, dict[str, Any]], known: set[str], preset: str | None, num_executors, num_users,
            num_jobs, params: dict[str, Any]) -> dict[str, Any]:
    p: dict[str, Any] = {}
    if preset is not None:
        if preset not in presets:
            raise UnknownNameError("job_sched preset", preset, presets)
        p.update(presets[preset])
    p.update({k: v for k, v in {"num_executors": num_executors, "num_users": num_users,
                                "num_jobs": num_jobs}.items() if v is not None})
    p.update(params)
    unknown = sorted(set(p) - known)
    if unknown:
        raise InvalidArgumentError(f"job_sched.generate() got unknown parameter(s) {unknown}; known: {sorted(known)}")
    for key in ("num_executors", "num_users", "num_jobs"):
        if key not in p:
            raise InvalidArgumentError(f"job_sched.generate() needs {key} (or a preset)")
    return p


def _generate(p: dict[str, Any], seed: int, name: str, setting: str | None) -> JobInstance:
    """The workload of parameters `p` (both versions draw it the same way)."""
    E, U, J = int(p["num_executors"]), int(p["num_users"]), int(p["num_jobs"])
    if E < 1:
        raise InvalidInstanceError(f"num_executors must be >= 1, got {E}")
    if U < 1 or J < 1:
        raise InvalidInstanceError(f"need num_users >= 1 and num_jobs >= 1, got {U} users, {J} jobs")
    mix = p.get("mix", "heterogeneous")
    if mix not in ("heterogeneous", "uniform"):
        raise UnknownNameError("job_sched mix", mix, ("heterogeneous", "uniform"))
    table = tpch_table()["sizes"]
    sizes = tuple(p.get("sizes") or SIZES)
    for s in (*sizes, *p.get("small_sizes", ()), *p.get("large_sizes", ())):
        if s not in table:
            raise UnknownNameError("TPC-H input size", s, table)
    queries = [int(q) for q in (p.get("queries") or range(1, NUM_QUERIES + 1))]
    if p.get("max_stages") is not None:
        queries = [q for q in queries if len(table["2g"][str(q)]["stages"]) <= int(p["max_stages"])]
        if not queries:
            raise InvalidInstanceError(f"no TPC-H query has at most {p['max_stages']} stages")
    inter = float(p.get("mean_interarrival_s", DECIMA_INTERARRIVAL_S * DECIMA_EXECUTORS / E))
    inter /= float(p.get("load_scale", 1.0))
    rng = np.random.default_rng([int(seed), 0x4A4F42])  # "JOB": keeps this stream apart from others

    heavy = int(p.get("heavy_users", max(1, U // 2))) if mix == "heterogeneous" and U > 1 else 0
    heavy_share = float(p.get("heavy_share", 0.8))
    small_sizes = tuple(p.get("small_sizes") or SMALL_SIZES)
    large_sizes = tuple(p.get("large_sizes") or LARGE_SIZES)
    init = int(p.get("initial_jobs", 0))
    t = 0.0
    jobs = []
    for j in range(J):
        if j >= init:
            t += float(rng.exponential(inter))
        arrival = 0.0 if j < init else round(t, 3)
        if heavy:
            is_heavy = rng.random() < heavy_share
            user = int(rng.integers(heavy)) if is_heavy else int(heavy + rng.integers(U - heavy))
            size_pool = small_sizes if is_heavy else large_sizes
        else:
            user = int(rng.integers(U))
            size_pool = sizes
        size = size_pool[int(rng.integers(len(size_pool)))]
        q = queries[int(rng.integers(len(queries)))]
        job = tpch_job(rng, q, size, max_tasks_per_stage=p.get("max_tasks_per_stage"),
                       warmup_scale=float(p.get("warmup_scale", 1.0)))
        job.update(arrival=arrival, user=user, small=size in small_sizes)
        jobs.append(job)
    return build(E, jobs, num_users=U, moving_delay_s=float(p.get("moving_delay_s", DECIMA_MOVING_DELAY_S)),
                 horizon_s=p.get("horizon_s"), name=name, setting=setting,
                 meta={"seed": int(seed), "mix": mix, "mean_interarrival_s": inter, "heavy_users": heavy})


def generate_v0(*, seed: int = 0, preset: str | None = None, num_executors: int | None = None,
                num_users: int | None = None, num_jobs: int | None = None, **params: Any) -> JobInstance:
    """A seeded multi-user workload (v0: the instance does not name its setting).

    Parameters (presets fill defaults; explicit arguments override them): `num_executors`, `num_users`,
    `num_jobs`; `mix` ("heterogeneous" or "uniform"); `heavy_users` (default half the users, at least 1),
    `heavy_share` (0.8); `sizes` (input sizes for the uniform mix), `small_sizes`, `large_sizes`;
    `queries` (TPC-H query numbers allowed); `max_stages` (only queries with at most this many stages);
    `max_tasks_per_stage`; `mean_interarrival_s` (default 25 s x 100 / num_executors); `load_scale`
    (divides the inter-arrival time); `initial_jobs` (arrive at t = 0); `moving_delay_s` (2.0);
    `warmup_scale` (1.0; 0 switches warm-up off); `horizon_s` (None).
    """
    p = _params(PRESETS_V0, _KNOWN, preset, num_executors, num_users, num_jobs, params)
    explicit = {k: v for k, v in {"num_executors": num_executors, "num_users": num_users, "num_jobs": num_jobs,
                                  **params}.items() if v is not None}
    return _generate(p, seed, format_spec("job_sched", preset or "custom", seed, explicit), None)


def generate_v1(*, seed: int = 0, preset: str | None = None, num_executors: int | None = None,
                num_users: int | None = None, num_jobs: int | None = None, **params: Any) -> JobInstance:
    """A seeded multi-user workload in a named setting: `shared_app` (UWFQ's one shared Spark application, no
    moving delay or warm-up) or `multi_app` (Decima's executor model: 2 s moving delay, fresh-executor warm-up).

    Parameters: v0's (see `generate_v0`) and `setting`. The delays are the setting's (`setting`, else the
    preset's, else `multi_app` as v0's defaults), then any explicit `moving_delay_s`/`warmup_scale`; without
    `setting`, the setting is the one those delays make (so every v0 argument list makes the v0 instance, now
    naming its setting); with `setting`, explicit delays must agree with it. The spec always names the setting.
    """
    p = _params(PRESETS, _KNOWN | {"setting"}, preset, num_executors, num_users, num_jobs, params)
    for key in ("moving_delay_s", "warmup_scale"):
        v = params.get(key)
        if key in params and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0):
            raise InvalidArgumentError(f"job_sched.generate(): {key} must be a finite number >= 0, got {v!r}")
    setting = params.get("setting")
    if setting is not None and setting not in SETTINGS:
        raise UnknownNameError("job_sched setting", str(setting), SETTINGS)
    # the delays: the setting's (explicit, else the preset's, else multi_app as in v0), then explicit values
    base = setting or p.get("setting", "multi_app")
    p = {k: v for k, v in p.items() if k != "setting"}
    p.update({k: v for k, v in SETTING_DELAYS[base].items() if k not in params})
    charges = float(p["moving_delay_s"]) > 0 or float(p["warmup_scale"]) > 0
    if setting is None:
        setting = "multi_app" if charges else "shared_app"
    elif charges != (setting == "multi_app"):
        raise InvalidArgumentError(
            f"job_sched.generate(): setting {setting} {'has no' if setting == 'shared_app' else 'needs a'} moving "
            f"delay or warm-up, got moving_delay_s={p['moving_delay_s']}, warmup_scale={p['warmup_scale']}")
    explicit = {k: v for k, v in {"num_executors": num_executors, "num_users": num_users, "num_jobs": num_jobs,
                                  **params}.items() if v is not None}
    explicit["setting"] = setting
    return _generate(p, seed, format_spec("job_sched", preset or "custom", seed, explicit, version=1), setting)


def offered_load(inst: JobInstance) -> float:
    """Total work / (executors x arrival span): Decima's load measure (below 1 for a stable stream)."""
    span = float(inst.job_arrival.max() - inst.job_arrival.min())
    return float(inst.stage_work_s.sum()) / (inst.num_executors * max(span, 1e-9)) if span > 0 else math.inf


# The family's generator: v0 is what every spec without a version suffix names; new instances are v1's.
GENERATOR = Generator("job_sched", presets=PRESETS, versions={0: generate_v0, 1: generate_v1}, default_preset="small")
generate = GENERATOR
