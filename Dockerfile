# The swarmop operator: `swarmop run` with the built-in handlers, HTTP probes on :8080.
#
#   docker build -t swarmop/operator .
#
# Without a registry (the sandbox, air-gapped CI), build from a local base image
# and a wheelhouse in the context (swarmop.sandbox.operator_image does this):
#   pip wheel . -w wheelhouse
#   docker build --build-arg BASE_IMAGE=swarmop/python:local \
#     --build-arg PACKAGE=swarmop \
#     --build-arg PIP_OPTIONS="--no-index --find-links /src/wheelhouse" .
#
# Your own handlers: mount them and name them on the command line
# (`... run -m myhandlers --http 0.0.0.0:8080` with PYTHONPATH=/handlers), or
# derive an image: FROM swarmop/operator / COPY myhandlers /handlers/myhandlers.
# See docs/deploy.md.

ARG BASE_IMAGE=python:3.11.7-slim-bookworm

FROM ${BASE_IMAGE} AS build
# What to install: the source tree (default) or a name found in PIP_OPTIONS' index.
ARG PACKAGE=/src
ARG PIP_OPTIONS=""
COPY . /src
# Wheels first (built from the source or taken from the wheelhouse), then installed
# under /install, which the final stage copies: no compiler, cache or source remains.
RUN python -m pip wheel ${PIP_OPTIONS} --no-cache-dir --wheel-dir /wheels ${PACKAGE} \
 && python -m pip install --no-index --no-cache-dir --no-compile --prefix=/install /wheels/*.whl

FROM ${BASE_IMAGE}
COPY --from=build /install /usr/local
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONPATH=/handlers
# Not root by default. Talking to /var/run/docker.sock needs root or the socket's
# group (docker-stack.yml runs as root for that; with a TLS endpoint,
# DOCKER_HOST=tcp://host:2376 + DOCKER_TLS_VERIFY=1 + DOCKER_CERT_PATH, this user works).
USER 10001:10001
WORKDIR /handlers
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status == 200 else 1)"]
ENTRYPOINT ["swarmop", "run"]
CMD ["--http", "0.0.0.0:8080"]
