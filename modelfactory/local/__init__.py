"""modelfactory on one machine: the CLI, local pipeline runs, the embedded MLflow server and
local serving processes (the embedded defaults of the cluster's parts)."""
