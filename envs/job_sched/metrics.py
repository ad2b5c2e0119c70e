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
"""
from __future__ import annotations

from typing import Any

import numpy as np

from sysgym.envs.job_sched.instance import JobInstance


def schedule_metrics(inst: JobInstance, job_finish: np.ndarray, busy_s: float | None = None) -> dict[str, Any]:
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
    }
    if busy_s is not None:
        out["utilisation"] = float(busy_s / (inst.num_executors * max(makespan, 1e-9)))
    return out
