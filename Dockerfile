# The contextlake service (and its CLI, for migrations and keys).
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends postgresql-client libgomp1 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/contextlake
COPY pyproject.toml README.md ./
COPY app app
COPY migrations migrations
COPY sql sql
RUN pip install --no-cache-dir -e .
EXPOSE 8000
CMD ["contextlake", "serve", "--host", "0.0.0.0", "--port", "8000"]
