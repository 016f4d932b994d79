# The mirrorfarm image: `mirrorfarm serve` as a primary or a mirror (farm) node, as charts/mirrorfarm runs it.
#   docker build -t mirrorfarm:0.1.0 .        (or: podman build -t mirrorfarm:0.1.0 .)
# Configuration comes from MIRRORFARM_* variables and mounted files (see the README's Configuration table):
#   /var/lib/mirrorfarm            HOME and MIRRORFARM_HOME: database, repositories, keys (a volume; PVC per pod)
#   /etc/mirrorfarm/ssh            shared SSH host keys (MIRRORFARM_SSH_HOST_KEY_DIR), read only
#   /etc/mirrorfarm/identity/...   a farm's mirror key (MIRRORFARM_MIRROR_KEY_FILE), read only
#   /etc/mirrorfarm/trust/...      a private CA bundle (MIRRORFARM_TRUST_CA_FILE), read only
#   /tmp                           scratch; the root filesystem may be read-only
# It runs as the account git (uid/gid 10001), the SSH login name of its clone URLs, and listens on 7990 (HTTP;
# TLS usually ends at the ingress) and 7999 (SSH). With MIRRORFARM_SSH_FRONTEND=openssh (the chart sets it) the
# server runs OpenSSH's sshd, as git, for SSH; otherwise its built-in SSH server.
ARG NODE_IMAGE=node:20-bookworm-slim

# --- build: compile the TypeScript and the native modules (better-sqlite3, ssh2's optional ones) ----------
FROM ${NODE_IMAGE} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends g++ make python3 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# Native modules build against the headers next to this very node (no download of headers at build time).
ENV npm_config_nodedir=/usr/local \
    npm_config_update_notifier=false \
    npm_config_fund=false \
    npm_config_audit=false
# Behind a TLS-intercepting proxy, npm needs that proxy's CA: pass a path with --build-arg (and the file with
# a volume or secret). Unset by default, so npm trusts its usual CAs.
ARG npm_config_cafile
WORKDIR /opt/mirrorfarm
COPY package.json package-lock.json ./
RUN npm ci
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY bin ./bin
RUN npm run build \
 && npm prune --omit=dev \
 && chmod 0755 dist/cli/main.js \
 && rm -rf src tsconfig.json tsconfig.build.json

# --- runtime: node, git, the OpenSSH client and server and an init; no compiler ---------------------------
FROM ${NODE_IMAGE}
# git does the Git work; ssh is how a mirror fetches from its primary; sshd is the OpenSSH front end (run by the
# server as git, never as a system service: the host keys Debian generates are removed, the server brings its
# own), and perl runs its keys and session commands (bin/; git depends on perl anyway); tini is PID 1: it forwards SIGTERM to the server (which lets running clones finish) and reaps orphans
# such as ssh's background multiplexing masters. Not `tini -g`: signalling the whole group would kill running
# git transfers at once.
# The account git: sshd runs every session's forced command with its login shell (so /bin/sh, not nologin), and
# '*' as its password field keeps it from counting as locked while allowing no password login.
RUN apt-get update \
 && apt-get install -y --no-install-recommends git perl openssh-client openssh-server tini ca-certificates \
 && rm -rf /var/lib/apt/lists/* /etc/ssh/ssh_host_* \
 && groupadd --system --gid 10001 git \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/mirrorfarm --no-create-home --shell /bin/sh git \
 && usermod -p '*' git \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/mirrorfarm \
 && install -d -m 0755 /etc/mirrorfarm /etc/mirrorfarm/ssh /etc/mirrorfarm/identity /etc/mirrorfarm/trust
# Owned by root and not writable by anyone else: sshd runs the keys command (bin/) only from such a path, and the
# server refuses to start the OpenSSH front end otherwise (the session command beside it runs as git).
COPY --from=build /opt/mirrorfarm /opt/mirrorfarm
RUN chmod -R go-w /opt/mirrorfarm \
 && ln -s /opt/mirrorfarm/dist/cli/main.js /usr/local/bin/mirrorfarm
ENV NODE_ENV=production \
    HOME=/var/lib/mirrorfarm \
    MIRRORFARM_HOME=/var/lib/mirrorfarm
VOLUME ["/var/lib/mirrorfarm"]
WORKDIR /var/lib/mirrorfarm
USER 10001:10001
EXPOSE 7990 7999
ENTRYPOINT ["/usr/bin/tini", "--", "mirrorfarm"]
CMD ["serve"]
# Last, so that a new revision or build date does not invalidate the cached layers above.
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="mirrorfarm" \
      org.opencontainers.image.description="Git server with smart mirrors: a primary, or a node of a read-only mirror farm" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/mirrorfarm/mirrorfarm" \
      org.opencontainers.image.url="https://github.com/mirrorfarm/mirrorfarm" \
      org.opencontainers.image.documentation="https://github.com/mirrorfarm/mirrorfarm#deploying-on-kubernetes" \
      org.opencontainers.image.base.name="docker.io/library/node:20-bookworm-slim"
