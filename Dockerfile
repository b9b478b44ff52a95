# syntax=docker/dockerfile:1
#
# Presence in a container: a static binary (no cgo: the SQLite driver is
# pure Go) on distroless/static, running as a non-root user, data in the
# /data volume. Build: docker build -t presence .
# Run:   docker run -p 8080:8080 -v presence-data:/data presence
# See docs/OPERATIONS.md ("Docker").

FROM golang:1.26-bookworm AS build
WORKDIR /src
# Modules first, so a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# The same command as `make build`, plus the version. Every asset (CSS,
# JS, templates, migrations) is embedded and committed: no Node needed.
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.buildVersion=${VERSION}" -o /out/presence ./cmd/presence \
 && /out/presence version \
 && mkdir -p /out/data

# distroless/static: CA certificates (ACME needs them), tzdata and
# /etc/passwd with the "nonroot" user (65532); no shell, no curl.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/presence /presence
# A fresh named volume takes this directory's owner: the non-root user.
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
ENV PRESENCE_ADDR=:8080 \
    PRESENCE_DATA=/data
VOLUME ["/data"]
EXPOSE 8080
# No curl in the image: the binary asks its own /healthz (exit 0 or 1),
# at PRESENCE_ADDR like serve.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/presence", "healthcheck"]
ENTRYPOINT ["/presence"]
CMD ["serve"]
