# The contextlake service (and its CLI, for migrations and keys): the package installed from a built
# wheel (the engine's SQL and migrations ship inside it), plus the feature project it serves.
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends postgresql-client libgomp1 && rm -rf /var/lib/apt/lists/*
WORKDIR /tmp/build
COPY pyproject.toml README.md ./
COPY app app
COPY migrations migrations
COPY sql sql
RUN pip install --no-cache-dir . && rm -rf /tmp/build
WORKDIR /opt/contextlake
# The card example as the served feature project (its SQL migrations and settings file only).
COPY examples/cards/contextlake.toml examples/cards/README.md project/
COPY examples/cards/migrations project/migrations
ENV CONTEXTLAKE_HOME=/var/lib/contextlake
EXPOSE 8000
CMD ["contextlake", "serve", "--host", "0.0.0.0", "--port", "8000"]
