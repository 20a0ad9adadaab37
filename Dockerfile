# The node's image: one package, the role chosen by the command.
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends nodejs npm && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY contracts/package.json contracts/package-lock.json contracts/
RUN cd contracts && npm ci --no-audit --no-fund --omit=dev
COPY pyproject.toml README.md ./
COPY chain chain
COPY node node
COPY indexer indexer
COPY api api
COPY contracts contracts
COPY deployments deployments
RUN pip install --no-cache-dir .
ENV OPENPAY_API_HOST=0.0.0.0 OPENPAY_LOG_JSON=true OPENPAY_ENVIRONMENT=production
EXPOSE 8080
ENTRYPOINT ["openpay"]
CMD ["run", "api"]
