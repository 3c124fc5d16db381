"""The model API's own request and answer headers (HTTP), the same keys as gRPC metadata."""

from __future__ import annotations

# Asked: answer with this version (champion or challenger), bypassing the rollout. Answered:
# the version that answered.
MODEL_VERSION = "x-model-version"
# Sticky routing: the same key gets the same version at a given rollout weight.
REQUEST_KEY = "x-request-key"
# Echoed (generated when absent) and stored with the logged predictions; POST /feedback names a
# prediction by it.
REQUEST_ID = "x-request-id"
AUTHORIZATION = "authorization"  # Bearer <token> when MODELFACTORY_AUTH_TOKEN is set
