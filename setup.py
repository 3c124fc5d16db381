"""Package layout beyond what pyproject.toml can say: the adapter folders at the repository root
(``components/``, ``pipelines/``, ``serving/``, as the project card names them) install under
names of their own, so they never collide with other projects' ``components`` or ``serving``."""

from setuptools import find_packages, setup

ADAPTERS = {
    "modelfactory_components": "components",
    "modelfactory_pipelines": "pipelines",
    "modelfactory_serving": "serving",
}

packages = find_packages(include=["modelfactory", "modelfactory.*"])
for name, folder in ADAPTERS.items():
    packages += [name] + [f"{name}.{sub}" for sub in find_packages(folder)]

setup(
    packages=packages,
    package_dir=ADAPTERS,
    package_data={"modelfactory_pipelines": ["*.yaml"]},
)
