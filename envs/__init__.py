"""Problem families. Importing this registers each family and its Gymnasium envs."""
from sysgym.envs import vm_resched  # noqa: F401
from sysgym.envs.vm_resched import registration as _vm_registration  # noqa: F401
