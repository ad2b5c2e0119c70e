"""Job-scheduling methods; importing registers them: the online policies (`job_sched.fifo`, `.fair`,
`.user_fair`, `.cfq`, `.decima_cap`, `.srpt`, `.random`, `.uwfq`; each class is both the solver and the policy
object the simulator and the env drive, with `PolicyAgent` for the env) and the clairvoyant bound
`job_sched.cpsat`."""
from sysgym.solvers.job_sched import cpsat, policies  # noqa: F401
