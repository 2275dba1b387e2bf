# mamori — developer entry points. `make demo` and `make test` work on a fresh machine:
# they create the virtualenv and build the local control plane (etcd + kube-apiserver +
# kubectl from Go modules) themselves.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CACHE := .cache
PYTEST_ARGS ?=

.PHONY: help venv controlplane node coredns netpol helm image lint typecheck hadolint unit integration test generate \
        demo bench clean kind-up kind-install cluster cluster-down supplychain

help:
	@echo "make demo          the whole story on a local control plane (builds what it needs)"
	@echo "make test          lint, types, unit and integration tests (real kube-apiserver)"
	@echo "make controlplane  build etcd, kube-apiserver and kubectl from Go modules"
	@echo "make node          build kubelet, kube-proxy, kube-controller-manager, kube-scheduler,"
	@echo "                   containerd 2.x and the CNI plugins from Go modules (runc from Debian)"
	@echo "make coredns       build CoreDNS (cluster DNS for the local cluster) from Go modules"
	@echo "make netpol        build the NetworkPolicy engine of the datapath tests (kube-router's"
	@echo "                   firewall, tests only) from Go modules (ipset from Debian)"
	@echo "make supplychain   build the registry tests' OCI registry, cosign, notation, oras and"
	@echo "                   crane (tests only) from Go modules"
	@echo "make helm          build helm from Go modules"
	@echo "make image         build the Dockerfile with buildah into .cache/image/mamori.oci.tar"
	@echo "make cluster       a local cluster with a real node and mamori installed by helm from"
	@echo "                   our image, no Docker (root; Ctrl-C or make cluster-down stops it)"
	@echo "make bench         benchmarks (figures go to docs/benchmarks.md by hand)"
	@echo "make generate      rewrite the CRD, values.schema.json, values.yaml's policy and"
	@echo "                   docs/policy.md from the policy's declaration (mamori/policy/shape.py)"

$(BIN)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

venv: $(BIN)/.installed

controlplane:
	bash tools/controlplane/build.sh

# A real node for the node tests: the Kubernetes node binaries from the control plane's pin,
# containerd 2.x (CRI built in) and the CNI plugins from Go modules, into .cache/node/bin; runc,
# iptables and busybox-static from Debian (installed with apt-get when missing, so as root).
node:
	bash tools/node/build.sh

helm:
	bash tools/helm/build.sh

# Cluster DNS for the local cluster's node (helm test calls the webhook by its Service name):
# CoreDNS with only the plugins it needs, from tools/coredns/go.mod.
coredns:
	bash tools/coredns/build.sh

# The NetworkPolicy engine of the datapath tests (tests/integration/test_datapath.py), for the
# tests only: kube-router's firewall controller from tools/netpol/go.mod; ipset from Debian.
netpol:
	bash tools/netpol/build.sh

# The supply-chain tools of the registry tests (tests/integration/registry_support.py), for the
# tests only: an OCI registry, cosign, notation, oras and crane from tools/supplychain/go.mod.
supplychain:
	bash tools/supplychain/build.sh

# The Dockerfile built with buildah on a local stand-in for python:3.11-slim (no Docker engine;
# needs root and the Debian packages buildah, mmdebstrap, runc, umoci). Rebuilt only when an input
# changes; the image tests (marker `image`) run it with runc.
image:
	bash tools/image/build.sh

generate: venv
	$(BIN)/python -m mamori_dev.generate --write

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

hadolint: venv
	$(BIN)/hadolint Dockerfile

unit: venv helm
	$(BIN)/python -m pytest tests -m "not integration and not image" $(PYTEST_ARGS)

integration: venv controlplane node coredns netpol helm supplychain
	$(BIN)/python -m pytest tests -m integration $(PYTEST_ARGS)

# One pytest run for everything, so the control plane starts once per session.
test: venv controlplane node coredns netpol helm supplychain image lint typecheck hadolint
	$(BIN)/python -m pytest tests $(PYTEST_ARGS)

# A Docker-free counterpart of `make kind-up kind-install`: control plane, controllers and one
# real node (containerd, kubelet, kube-proxy) in a network namespace of their own, with mamori
# installed by helm from the image `make image` built. Stays in the foreground.
cluster: venv controlplane node coredns netpol helm image
	$(BIN)/python -m tools.cluster.cluster up

cluster-down: venv
	$(BIN)/python -m tools.cluster.cluster down

demo: venv controlplane
	$(BIN)/python -m mamori_dev.demo $(DEMO_ARGS)

bench: venv controlplane
	bash bench/admission/run.sh
	bash bench/engine/run.sh
	bash bench/check/run.sh

clean:
	rm -rf $(CACHE) .pytest_cache .mypy_cache .ruff_cache

# -- for machines with Docker: a local kind cluster with the chart installed ------------------
# `make kind-up kind-install` builds the image, loads it into kind (no registry needed) and
# installs the chart; `helm test` then checks the webhook denies a privileged pod. Set HELM to
# use a helm of your own instead of building one from Go modules.
KIND ?= kind
DOCKER ?= docker
KIND_CLUSTER ?= mamori
KIND_IMAGE ?= mamori:dev
KIND_NAMESPACE ?= mamori-system
HELM ?= $(CACHE)/helm/bin/helm

kind-up:
	@if $(KIND) get clusters 2>/dev/null | grep -qx '$(KIND_CLUSTER)'; then \
		echo "kind cluster $(KIND_CLUSTER) is already up"; \
	else \
		$(KIND) create cluster --name $(KIND_CLUSTER) --config kind-config.yaml --wait 180s; \
	fi

kind-install: $(if $(filter $(CACHE)/helm/bin/helm,$(HELM)),helm)
	$(DOCKER) build --tag $(KIND_IMAGE) .
	$(KIND) load docker-image $(KIND_IMAGE) --name $(KIND_CLUSTER)
	$(HELM) upgrade --install mamori charts/mamori --kube-context kind-$(KIND_CLUSTER) \
		--namespace $(KIND_NAMESPACE) --create-namespace \
		--set image.repository=$(word 1,$(subst :, ,$(KIND_IMAGE))) \
		--set image.tag=$(word 2,$(subst :, ,$(KIND_IMAGE))) \
		--set image.pullPolicy=Never \
		--set 'webhook.excludedNamespaces={kube-system,kube-node-lease,local-path-storage}' \
		--wait --timeout 5m
	$(HELM) test mamori --kube-context kind-$(KIND_CLUSTER) --namespace $(KIND_NAMESPACE) --logs
