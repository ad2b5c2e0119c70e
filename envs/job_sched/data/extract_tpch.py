"""How `tpch_decima.json` was made (run once by the maintainers; sysgym never needs decima-sim at run time).

Source: Decima's TPC-H traces (Mao et al., "Learning Scheduling Algorithms for Data Processing Clusters",
SIGCOMM'19), github.com/hongzimao/decima-sim commit c010dd7, `spark_env/tpch/<size>/adj_mat_<q>.npy` (stage
DAG, adj[i, j] = 1 means stage i is a parent of stage j) and `task_duration_<q>.npy` (per stage: task
durations in ms measured on Spark with 2..100 executors, split into `first_wave`, `rest_wave` and
`fresh_durations`). 22 TPC-H queries x 7 input sizes (2g ... 100g).

Per stage we keep facts, not code: the number of tasks (as decima-sim counts them: first + rest wave at the
first executor level), 11 quantiles (0 %, 10 %, ..., 100 %) of the warm task durations (rest wave plus first
wave with the fresh durations removed, as decima-sim's `pre_process_task_duration` does), and the mean
duration of tasks run on a fresh executor (decima-sim's warm-up effect).

Usage: python extract_tpch.py /path/to/decima-sim/spark_env/tpch > tpch_decima.json
"""
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

SIZES = ("2g", "5g", "10g", "20g", "50g", "80g", "100g")


def stage_facts(td: dict) -> dict:
    e0 = next(iter(td["first_wave"]))
    num_tasks = len(td["first_wave"][e0]) + len(td["rest_wave"][e0])
    warm, fresh = [], []
    for e in td["first_wave"]:
        left = Counter(td["fresh_durations"][e])
        for d in td["first_wave"][e]:
            if left[d] > 0:
                left[d] -= 1
            else:
                warm.append(d)
        fresh.extend(td["fresh_durations"][e])
        warm.extend(td["rest_wave"][e])
    if not warm:
        warm = fresh
    q = np.quantile(np.asarray(warm, float), np.linspace(0, 1, 11))
    return {"num_tasks": int(num_tasks), "q_ms": [int(round(x)) for x in q],
            "fresh_mean_ms": int(round(float(np.mean(fresh)))) if fresh else int(round(float(np.mean(warm))))}


def main(root: str) -> None:
    out = {"source": "hongzimao/decima-sim c010dd7 spark_env/tpch (Mao et al., SIGCOMM'19)", "sizes": {}}
    for size in SIZES:
        jobs = {}
        for q in range(1, 23):
            adj = np.load(Path(root) / size / f"adj_mat_{q}.npy", allow_pickle=True)
            td = np.load(Path(root) / size / f"task_duration_{q}.npy", allow_pickle=True).item()
            edges = [[int(i), int(j)] for i, j in zip(*np.nonzero(adj))]
            jobs[str(q)] = {"edges": edges, "stages": [stage_facts(td[n]) for n in range(adj.shape[0])]}
        out["sizes"][size] = jobs
    json.dump(out, sys.stdout, separators=(",", ":"))


if __name__ == "__main__":
    main(sys.argv[1])
