"""Job-scheduling methods; importing registers them (`job_sched.fifo`, `.fair`, `.user_fair`, `.cfq`,
`.decima_cap`, `.srpt`, `.random`, `.uwfq`, and the clairvoyant `job_sched.cpsat`)."""
from sysgym.solvers.job_sched import cpsat, policies  # noqa: F401
