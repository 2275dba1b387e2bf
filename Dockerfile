# mamori: one image, two roles in a cluster (`mamori webhook`, `mamori operator`) and the CI check
# (`mamori check`). Build: docker build -t mamori:dev .   (or: make kind-up kind-install)
#
# The base image is pinned by digest: python:3.11-slim as published on 2026-08-16 (Python
# 3.11.16 on Debian trixie; the digest is that of the multi-arch index, so amd64 and arm64 builds
# get the same release). Moving it is a reviewed change: resolve the tag's current digest with
# `docker buildx imagetools inspect python:3.11-slim`, or override it for one build with
# --build-arg PYTHON_IMAGE=<image>@sha256:<digest>.
ARG PYTHON_IMAGE=python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7

# -- build: a virtualenv with the locked dependencies and mamori's own wheel --------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1
WORKDIR /src

# Dependencies before the source, so this layer is rebuilt only when a lock file changes.
# Hash-checking mode: every wheel must match requirements/*.lock (tools/lock_runtime.py), and
# --only-binary means nothing is compiled from an sdist. The runtime virtualenv has no pip of its
# own: nothing can be installed into it once it is built.
# The two optional secrets carry a pip configuration for builds behind a private index or proxy
# (tools/image/build.sh passes the host's); they are mounted for this step only, never stored.
COPY requirements/ requirements/
RUN --mount=type=secret,id=pipconf,target=/etc/pip.conf \
    --mount=type=secret,id=pipcert,target=/run/secrets/pipcert \
    python -m venv /opt/build \
    && /opt/build/bin/pip install --require-hashes --no-deps --only-binary=:all: \
        -r requirements/build.lock \
    && python -m venv --without-pip /opt/mamori \
    && /opt/build/bin/pip --python /opt/mamori/bin/python install --require-hashes --no-deps \
        --only-binary=:all: -r requirements/runtime.lock

COPY pyproject.toml README.md ./
COPY mamori/ mamori/
COPY webhook/ webhook/
COPY operator/ operator/
# Byte-compiled here, because the root filesystem is read-only at run time.
RUN /opt/build/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /src/dist . \
    && /opt/build/bin/pip --python /opt/mamori/bin/python install --no-deps --no-index \
        /src/dist/mamori-*.whl

# What mamori never loads at run time (measured: botocore's models of ~450 AWS services, the
# unused asyncio copy of the kubernetes client, libraries' bundled tests) stays out of the image.
# Kept models: the ECR client the operator creates, and STS/SSO for botocore's credential chain.
COPY tools/image/slim_venv.py tools/image/
RUN /opt/mamori/bin/python tools/image/slim_venv.py /opt/mamori/lib/python3.11/site-packages \
        --aws-services ecr,inspector2,sso,sso-oidc,sts --drop kubernetes/aio \
    && /opt/mamori/bin/mamori --version

# -- run: the base image, the virtualenv, a numeric non-root user -------------------------------
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="mamori" \
      org.opencontainers.image.description="Container-security guardrails for Kubernetes" \
      org.opencontainers.image.licenses="Apache-2.0"
# The base image's own installers go too: at run time nothing is installed, by anyone.
RUN python -m pip uninstall --yes --quiet --root-user-action=ignore pip setuptools wheel \
    && rm -rf /root/.cache
COPY --from=build /opt/mamori /opt/mamori
ENV PATH=/opt/mamori/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# Writable scratch (gunicorn's heartbeat files, metrics) is /tmp, an emptyDir in the chart; the
# rest of the filesystem can be mounted read-only.
WORKDIR /tmp
# 65532: the conventional "nonroot" id; the chart sets the same runAsUser/runAsGroup.
USER 65532:65532
ENTRYPOINT ["mamori"]
CMD ["--help"]
