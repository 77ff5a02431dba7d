# One image for both components: `spo hooks` (the Deployment) and `spo nodesync` (the DaemonSet).
FROM python:3.11-slim

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
