"""Dockerfiles judged with the ClusterSecurityPolicy that judges pods (``mamori check``).

``parse.py`` reads the text into instructions (line continuations, comments, heredocs, flags,
exec and shell forms) the way BuildKit does; ``expand.py`` substitutes build arguments;
``stages.py`` builds the stages (``FROM … AS name``, ``ARG``-parameterised bases); ``rules/``
holds one module per ``dockerfile-*`` check; ``hadolint.py`` runs hadolint when it is installed;
``judge.py`` puts them together for one file. Nothing here is imported until ``mamori check``
meets a Dockerfile, so checking manifests costs nothing more.
"""
