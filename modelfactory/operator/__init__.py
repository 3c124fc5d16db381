"""The rollout operator: kopf handlers over a pure decision core (reserved: the operator issue
fills it)."""
