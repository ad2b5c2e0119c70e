"""Job-scheduling metrics from job completion times (shared by the simulator and the evaluator).

* response (job completion) time = finish - arrival; mean, p95, per user, for small jobs and for the others;
* slowdown = response / the job's ideal time alone on the cluster, max(critical path, work / executors)
  (a lower bound on any schedule's response time, so slowdown >= 1 without delays);
* fairness: `user_slowdown_ratio` = worst user's mean slowdown / best user's (1 = equal treatment; the UWFQ
  paper's point is that job-level fairness lets users who submit many jobs crowd out the others), and
  `user_mean_response_of_means_s` = mean over users of their mean response (what the fairness-weighted
  reward of the env sums); `fair_share_violation_ratio` = share of jobs that finish later than under their
  bounded fair share: arrival + max(critical path, work / (E / (users active at its arrival x that user's
  active jobs))), the two-level (user, then job) fair share of the UWFQ paper (arXiv 2510.15485), computed
  with the jobs present at the job's arrival;
* makespan (last finish - first arrival) and executor utilisation (busy executor-seconds / (executors x
  makespan)), when a schedule is given.

The UWFQ paper's user-level measures (arXiv 2510.15485, section 5; its analysis code reports each user's mean
response, the frequent/"power" users' against the infrequent ones', and jobs finishing after their fair-share
deadline):
* `per_user_mean_response_s` (above);
* `heavy_light_response_ratio`: the mean over heavy users of their mean response / the same over light users;
  heavy users are those submitting more jobs than the mean per user (the generator's heavy users, who submit
  many small jobs), light the others (None when every user submits as many);
* the share each user receives against its fair share over time (`user_share_timeline`, when the schedule is
  given): at each instant a user's demand is its tasks that are runnable or running (stage ready, task not
  finished), its fair share the max-min fair division of the executors among users by those demands (equal
  weights: a user below its share keeps its demand, the rest is split evenly: bounded fairness), and what it
  receives its running tasks (an executor that is moving serves nobody). `per_user_share_ratio` = received
  executor-seconds / fair executor-seconds over the run, `min_user_share_ratio` the worst-served user's, and
  `user_share_deficit` = the fair executor-seconds users did not receive / all fair executor-seconds (0: every
  user always got at least its fair share).
* `setting`: the instance's setting (`shared_app` or `multi_app`), so every record names it.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from sysgym.envs.job_sched.instance import JobInstance


def user_share_timeline(inst: JobInstance, task_start, task_end) -> dict[str, np.ndarray]:
    """Each user's demand, fair share and received executors over time (module doc), piecewise constant:
    `times` (K + 1,) and `demand`, `fair`, `received` (K, users) on [times[i], times[i + 1])."""
    st = np.asarray(task_start, float)
    en = np.asarray(task_end, float)
    ntasks = np.diff(inst.stage_task_ptr)
    task_stage = np.repeat(np.arange(inst.num_stages), ntasks)
    stage_end = np.maximum.reduceat(en, inst.stage_task_ptr[:-1])
    ready = inst.job_arrival[inst.stage_job].astype(float)
    for a, b in inst.edges.tolist():
        ready[b] = max(ready[b], stage_end[a])
    ready_task = ready[task_stage]
    user = inst.job_user[inst.stage_job[task_stage]]
    times = np.unique(np.concatenate([ready_task, st, en]))
    U, K = inst.num_users, len(times) - 1
    demand = np.zeros((max(K, 0), U))
    received = np.zeros((max(K, 0), U))
    if K > 0:
        for arr, lo, hi in ((demand, ready_task, en), (received, st, en)):
            delta = np.zeros((K + 1, U))
            np.add.at(delta, (np.searchsorted(times, lo), user), 1.0)
            np.add.at(delta, (np.searchsorted(times, hi), user), -1.0)
            arr[:] = np.cumsum(delta, axis=0)[:K]
    # max-min fair division of the executors by demand (progressive filling, users by demand ascending)
    order = np.argsort(demand, axis=1, kind="stable")
    d_sorted = np.take_along_axis(demand, order, axis=1)
    left = np.full(K, float(inst.num_executors))
    f_sorted = np.zeros_like(d_sorted)
    for i in range(U):
        give = np.minimum(d_sorted[:, i], left / (U - i))
        f_sorted[:, i] = give
        left -= give
    fair = np.zeros_like(demand)
    np.put_along_axis(fair, order, f_sorted, axis=1)
    return {"times": times, "demand": demand, "fair": fair, "received": received}


def user_share_metrics(inst: JobInstance, task_start, task_end) -> dict[str, Any]:
    """`per_user_share_ratio`, `min_user_share_ratio`, `user_share_deficit` (module doc)."""
    tl = user_share_timeline(inst, task_start, task_end)
    dt = np.diff(tl["times"])[:, None]
    fair = (tl["fair"] * dt).sum(0)
    got = (tl["received"] * dt).sum(0)
    short = (np.maximum(tl["fair"] - tl["received"], 0.0) * dt).sum()
    ratio = {str(u): float(got[u] / fair[u]) for u in range(inst.num_users) if fair[u] > 0}
    return {"per_user_share_ratio": ratio, "min_user_share_ratio": min(ratio.values()) if ratio else None,
            "user_share_deficit": float(short / fair.sum()) if fair.sum() > 0 else 0.0}


def heavy_light_response_ratio(inst: JobInstance, per_user_resp: dict[str, float]) -> float | None:
    """Mean of heavy users' mean responses / mean of light users' (module doc); None without both kinds."""
    counts = np.bincount(inst.job_user, minlength=inst.num_users)
    users = [u for u in range(inst.num_users) if counts[u] > 0]
    mean_count = counts[users].mean()
    heavy = [per_user_resp[str(u)] for u in users if counts[u] > mean_count]
    light = [per_user_resp[str(u)] for u in users if counts[u] <= mean_count]
    if not heavy or not light:
        return None
    return float(np.mean(heavy) / max(np.mean(light), 1e-12))


def schedule_metrics(inst: JobInstance, job_finish: np.ndarray, busy_s: float | None = None,
                     task_start=None, task_end=None) -> dict[str, Any]:
    resp = np.asarray(job_finish, float) - inst.job_arrival
    ideal = np.maximum(inst.job_critical_path_s(), inst.job_work_s() / inst.num_executors)
    slow = resp / np.maximum(ideal, 1e-9)
    per_user_resp, per_user_slow = {}, {}
    for u in range(inst.num_users):
        sel = inst.job_user == u
        if sel.any():
            per_user_resp[str(u)] = float(resp[sel].mean())
            per_user_slow[str(u)] = float(slow[sel].mean())
    small = inst.job_small
    slows = list(per_user_slow.values())
    a = inst.job_arrival
    fin = np.asarray(job_finish, float)
    present = (a[None, :] <= a[:, None]) & (fin[None, :] > a[:, None])  # [j, k]: k in system when j arrives
    users = np.zeros((inst.num_jobs, inst.num_users), bool)
    np.logical_or.at(users, (np.nonzero(present)[0], inst.job_user[np.nonzero(present)[1]]), True)
    same_user = present & (inst.job_user[None, :] == inst.job_user[:, None])
    share = inst.num_executors / (users.sum(1) * same_user.sum(1))
    fair_resp = np.maximum(inst.job_critical_path_s(), inst.job_work_s() / share)
    violations = resp > fair_resp * (1 + 1e-9)
    makespan = float(np.max(job_finish) - inst.job_arrival.min())
    out: dict[str, Any] = {
        "mean_response_s": float(resp.mean()),
        "p95_response_s": float(np.percentile(resp, 95)),
        "max_response_s": float(resp.max()),
        "per_user_mean_response_s": per_user_resp,
        "per_user_mean_slowdown": per_user_slow,
        "small_job_mean_response_s": float(resp[small].mean()) if small.any() else None,
        "small_job_p95_response_s": float(np.percentile(resp[small], 95)) if small.any() else None,
        "large_job_mean_response_s": float(resp[~small].mean()) if (~small).any() else None,
        "num_small_jobs": int(small.sum()),
        "mean_slowdown": float(slow.mean()),
        "p95_slowdown": float(np.percentile(slow, 95)),
        "user_slowdown_ratio": float(max(slows) / max(min(slows), 1e-9)) if slows else None,
        "user_mean_response_of_means_s": float(np.mean(list(per_user_resp.values()))),
        "fair_share_violation_ratio": float(violations.mean()),
        "makespan_s": makespan,
        "num_jobs": int(inst.num_jobs),
        "sum_response_s": float(resp.sum()),
        "heavy_light_response_ratio": heavy_light_response_ratio(inst, per_user_resp),
        "setting": inst.effective_setting,
    }
    if task_start is not None and task_end is not None:
        out.update(user_share_metrics(inst, task_start, task_end))
    if busy_s is not None:
        out["utilisation"] = float(busy_s / (inst.num_executors * max(makespan, 1e-9)))
    return out
