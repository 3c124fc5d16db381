# The image every KFP component of modelfactory runs in; the chart's MLflow
# tracking server and its schema-migration Job run in it too (it has mlflow and
# the PostgreSQL driver). Build from the repo root:
#   docker build -f docker/components.Dockerfile -t modelfactory-components:0.1.0 .
# Where no registry is reachable, build a base first (tools/build-base-image.sh)
# and pass --build-arg BASE_IMAGE=modelfactory/python:3.11-bookworm;
# tools/build-images.sh does both and can install from a local wheelhouse.
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
# Optional pip settings for offline builds (tools/build-images.sh --wheelhouse):
# a find-links URL and PIP_NO_INDEX=1. Only this stage sees them.
ARG PIP_FIND_LINKS=""
ARG PIP_NO_INDEX=0
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
RUN python3 -m venv /opt/venv
WORKDIR /src
# Dependencies first, at the locked versions, against stub packages, so that editing the code
# does not reinstall them (this layer stays cached while the lock and pyproject are unchanged).
COPY pyproject.toml setup.py README.m[d] ./
COPY requirements ./requirements
RUN mkdir modelfactory components pipelines serving \
 && touch modelfactory/__init__.py components/__init__.py pipelines/__init__.py serving/__init__.py \
 && PIP_CONSTRAINT=requirements/constraints.txt /opt/venv/bin/pip install ".[postgres]" \
 && rm -rf modelfactory components pipelines serving build *.egg-info
# The core and its adapters, installed as modelfactory, modelfactory_components,
# modelfactory_pipelines (with the compiled YAML) and modelfactory_serving.
COPY modelfactory ./modelfactory
COPY components ./components
COPY pipelines ./pipelines
COPY serving ./serving
RUN PIP_CONSTRAINT=requirements/constraints.txt /opt/venv/bin/pip install --no-deps --force-reinstall .

FROM ${BASE_IMAGE}
# A fixed non-root uid/gid that the Helm chart's securityContext names (10001).
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --home-dir /home/app --create-home --shell /usr/sbin/nologin app
COPY --from=build /opt/venv /opt/venv
WORKDIR /home/app
LABEL org.opencontainers.image.title="modelfactory-components" \
      org.opencontainers.image.description="modelfactory KFP components, pipelines and MLflow server" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/home/app \
    MODELFACTORY_HOME=/home/app/modelfactory
USER 10001:10001
CMD ["python3"]
