# syntax=docker/dockerfile:1
# The web dashboard (web/): built with Node, served by unprivileged nginx on port 8080. Build from
# the repository root:
#
#   docker build -f deploy/dashboard.Dockerfile -t taskvault-dashboard:0.1.0 .
#
# One image serves every environment: the service URLs are read by the browser from
# /config.json, which the Kubernetes manifest (k8s/dashboard.yaml) mounts from a ConfigMap.

# ---------------------------------------------------------------------------------------- build
FROM node:20-bookworm-slim AS build
WORKDIR /web
COPY web/package.json web/package-lock.json ./
RUN --mount=type=cache,target=/root/.npm npm ci --no-audit --no-fund
COPY web/ ./
RUN npm run build

# -------------------------------------------------------------------------------------- runtime
FROM nginxinc/nginx-unprivileged:1.27-alpine
COPY deploy/dashboard/nginx.conf /etc/nginx/conf.d/default.conf
COPY --from=build /web/dist/ /usr/share/nginx/html/
USER 101
EXPOSE 8080
