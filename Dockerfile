# The one image the Helm chart (helm/kudos-platform) runs: the six service
# binaries under /usr/local/bin, the shared libraries they link (found with
# ldd in the build stage), the time-zone database and the CA certificates
# (webhooks are POSTed over https by integrations_server), nothing else: no
# shell, no package manager. Runs as uid/gid 10001.
#   docker build -t registry.example.com/kudos-platform:0.1.0 .
# Secrets are never baked in: the chart mounts them as files (helm/README.md).

# ---- build: the same Debian packages as every other build (scripts/install-deps.sh)
FROM debian:bookworm AS build
ARG JOBS=4
WORKDIR /src
# The dependency layer first, so source edits do not reinstall packages.
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN bash scripts/install-deps.sh && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKUDOS_WERROR=ON \
      -DKUDOS_SERVICES="ledger;kudos;leaderboard;gateway" \
 && cmake --build /build -j "${JOBS}" \
      --target ledger_server kudos_server leaderboard_server gateway_server integrations_server \
               programs_server

# The runtime tree: binaries (debug info stripped), every library ldd names
# (copied under the name the loader asks for), a loader cache, the zone files
# (org time zones: periods and allowances), the CA bundle libcurl verifies
# webhook receivers with, and a passwd entry for the user.
RUN set -eu; \
    root=/rootfs; \
    mkdir -p "$root/usr/local/bin" "$root/etc" "$root/tmp" "$root/usr/share"; \
    chmod 1777 "$root/tmp"; \
    for service in ledger kudos leaderboard gateway integrations programs; do \
      strip --strip-debug -o "$root/usr/local/bin/${service}_server" \
        "/build/services/${service}/${service}_server"; \
    done; \
    ldd "$root"/usr/local/bin/*_server \
      | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// && $1 !~ /:$/ {print $1}' \
      | sort -u \
      | while read -r library; do cp -L --parents "$library" "$root"; done; \
    printf '/lib/x86_64-linux-gnu\n/usr/lib/x86_64-linux-gnu\n' > "$root/etc/ld.so.conf"; \
    ldconfig -r "$root"; \
    cp -a /usr/share/zoneinfo "$root/usr/share/zoneinfo"; \
    mkdir -p "$root/etc/ssl/certs"; \
    cp -L /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"; \
    echo 'kudos:x:10001:10001:kudos:/nonexistent:/nonexistent' > "$root/etc/passwd"; \
    echo 'kudos:x:10001:' > "$root/etc/group"; \
    echo 'hosts: files dns' > "$root/etc/nsswitch.conf"; \
    for service in ledger kudos leaderboard gateway integrations programs; do \
      chroot "$root" "/usr/local/bin/${service}_server" --version >/dev/null; \
    done

# ---- runtime: only what the build stage collected
FROM scratch
COPY --from=build /rootfs /
USER 10001:10001
ENV TZDIR=/usr/share/zoneinfo
# ledger 50051, kudos 50052, leaderboard 50053, integrations 50054, programs 50055 (gRPC),
# gateway 8080 (HTTP)
EXPOSE 50051 50052 50053 50054 50055 8080
# The chart picks the binary (command:); by itself the image runs the ledger.
ENTRYPOINT ["/usr/local/bin/ledger_server"]
