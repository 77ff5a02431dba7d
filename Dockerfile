# One image for every component: `spo hooks` and `spo webhook` (the Deployments), `spo nodesync`
# and `spo log-enricher` (the DaemonSets).
# BASE is any image with python3 (and its venv module) on PATH: the published image uses
# python:3.11-slim; the node tests build on a minimal Debian made by tools/image/build.py.
ARG BASE=python:3.11-slim
FROM ${BASE}

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/opt/spo/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY hooks ./hooks
COPY nodesync ./nodesync
# Installed the way the README installs it: a virtual environment and `pip install .`.
RUN python3 -m venv /opt/spo && /opt/spo/bin/pip install --no-cache-dir . && rm -rf /src

WORKDIR /
USER 65532:65532
ENTRYPOINT ["spo"]
CMD ["hooks"]
