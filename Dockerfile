# The bnsearch CLI in a container: `docker build -t bnsearch .`, then
# `docker run --rm -e BNSEARCH_STORAGE=postgresql+psycopg://... bnsearch run --max-trials 100`.
# CPU torch from PyTorch's CPU index (small); for GPUs, build with
# --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128 and run with --gpus all.
FROM python:3.11-slim
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG TORCH_VERSION=2.13.0
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
RUN pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX}"
WORKDIR /opt/bnsearch
COPY pyproject.toml README.md ./
COPY bnsearch ./bnsearch
RUN pip install . && useradd --create-home bnsearch
USER bnsearch
WORKDIR /home/bnsearch
ENTRYPOINT ["bnsearch"]
CMD ["--help"]
