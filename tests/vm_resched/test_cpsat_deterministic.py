"""CP-SAT's default limits are deterministic (solvers/cpsat_params.py, exact.py): a time limit that binds gives
the same plan and bound on every run, whatever the machine's load."""
import sysgym


def test_a_binding_time_limit_gives_the_same_plan_and_bound_twice():
    inst = sysgym.instance("vm_resched-v1/medium?seed=2")  # not solved to optimality in 0.3 s
    solver = sysgym.solvers.get("vm_resched.cpsat")
    runs = [solver.solve(inst, time_limit=0.3, seed=0) for _ in range(2)]
    assert runs[0].status == "timeout"
    assert runs[0].decisions == runs[1].decisions and runs[0].objective == runs[1].objective
    assert runs[0].bound == runs[1].bound and runs[0].stats["deterministic_time"] == runs[1].stats["deterministic_time"]
