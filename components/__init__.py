"""KFP v2 components, one folder per step, each a thin wrapper over ``modelfactory.steps`` or
a use case's own steps.

Every component runs in the component image (``MODELFACTORY_COMPONENT_IMAGE``)
on a cluster or with the DockerRunner, and as a subprocess of the current
Python with the kfp local SubprocessRunner.
"""

from modelfactory.config import get_settings

COMPONENT_IMAGE = get_settings().component_image
