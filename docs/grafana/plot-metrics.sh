#!/usr/bin/env bash
# Draws docs/img/metrics.png: the dashboard's metrics (docs/grafana/
# presence.json) from real /metrics samples, scraped every second while the
# load generator runs its phases against a real server (connect, storm,
# fan-out rounds, pings, a slow consumer, hold, SIGKILL and reconnect).
# Grafana is not needed: samples go to a TSV file and gnuplot draws it.
#
#   docs/grafana/plot-metrics.sh [loadgen flags]
#
# Needs gnuplot (Debian: gnuplot-nox) and curl. Defaults: TABS=1000 tabs,
# 20 s hold; pass loadgen flags to change the rest.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-docs/img/metrics.png}
addr=${ADDR:-127.0.0.1:18532}
work=$(mktemp -d)
trap 'kill "$scraper" 2>/dev/null || true; rm -rf "$work"' EXIT

make -s build
go build -o bin/loadgen ./cmd/loadgen

# Scrape every second; a second with no answer (the SIGKILL) is a gap.
names="presence_users_online presence_connections presence_websockets_open presence_sse_subscribers
presence_websockets_accepted_total presence_websockets_kicked_total presence_ws_messages_received_total
presence_ws_messages_rate_limited_total presence_widget_renders_total presence_sse_events_published_total
presence_sse_slow_clients_cut_total presence_db_write_transactions_total presence_db_presence_rows_written_total
presence_persist_pending_users process_resident_memory_bytes go_goroutines
presence_widget_list_deltas_total presence_widget_list_pushes_total presence_sse_resyncs_total"
echo "# t $(echo $names)" > "$work/samples.tsv"
(
  start=$(date +%s.%N)
  while :; do
    now=$(date +%s.%N)
    if m=$(curl -fsS --max-time 0.8 "http://$addr/metrics" 2>/dev/null); then
      row=$(awk -v names="$names" 'BEGIN { n = split(names, want, /[ \n]+/) }
        !/^#/ { v[$1] = $2 }
        END { for (i = 1; i <= n; i++) if (want[i] != "") printf " %s", (want[i] in v ? v[want[i]] : "NaN") }' <<<"$m")
      echo "$(awk -v a="$now" -v b="$start" 'BEGIN { printf "%.1f", a - b }')$row" >> "$work/samples.tsv"
    else
      echo "" >> "$work/samples.tsv" # a blank line: gnuplot breaks the line here
    fi
    sleep 1
  done
) &
scraper=$!

tabs=${TABS:-1000}
bin/loadgen -addr "$addr" -tabs "$tabs" -per-worker 500 -hold 20s -out "$work/loadgen.json" "$@" 2>&1 | sed 's/^/loadgen: /'
sleep 2
kill "$scraper"
cp "$work/samples.tsv" "${SAMPLES:-/dev/null}" 2>/dev/null || true

# Counters become per-second rates (difference over the previous sample).
awk 'NR == 1 { print; next }
  NF == 0 { print ""; have = 0; next }
  { line = $1
    for (i = 2; i <= NF; i++) {
      counter = (i >= 6 && i <= 14) || i >= 18
      if (counter && prevt != "" && have) {
        d = ($i - prev[i]) / ($1 - prevt); line = line " " (d < 0 ? "NaN" : d)
      } else if (counter) { line = line " NaN" } else { line = line " " $i }
      prev[i] = $i
    }
    prevt = $1; have = 1; print line }' "$work/samples.tsv" > "$work/rates.tsv"

gnuplot <<GP
set terminal pngcairo size 1400,1400 font "DejaVu Sans,10"
set output "$out"
set datafile missing "NaN"
set key top left Left reverse opaque box
set grid
set xlabel "seconds"
set multiplot layout 4,2 title "Presence /metrics, scraped every second during a loadgen run ($tabs simulated tabs; the gap is the SIGKILL and restart)"
set title "Online users and connections"
plot "$work/rates.tsv" using 1:2 with lines lw 2 title "users online", \
     "" using 1:3 with lines title "presence connections", \
     "" using 1:4 with lines title "WebSockets open", \
     "" using 1:5 with lines title "widget event streams"
set title "WebSocket churn (per second)"
plot "$work/rates.tsv" using 1:6 with lines title "accepted/s", \
     "" using 1:7 with lines title "dropped by heartbeat deadline/s"
set title "WebSocket messages (per second)"
plot "$work/rates.tsv" using 1:8 with lines title "received/s", \
     "" using 1:9 with lines title "refused by rate limit/s"
set title "Widget fan-out (per second)"
plot "$work/rates.tsv" using 1:10 with lines title "fragment renders/s", \
     "" using 1:11 with lines title "events published/s", \
     "" using 1:12 with lines title "slow streams cut/s"
set title "Widget list updates (per second)"
plot "$work/rates.tsv" using 1:18 with lines title "deltas/s", \
     "" using 1:19 with lines title "whole-list pushes/s", \
     "" using 1:20 with lines title "lagging streams resynced/s"
set title "Database writes"
plot "$work/rates.tsv" using 1:13 with lines title "write transactions/s", \
     "" using 1:14 with lines title "presence rows/s", \
     "" using 1:15 with lines title "users pending a write"
set title "Process"
set ytics nomirror
set y2tics
set ylabel "MiB"
set y2label "goroutines"
plot "$work/rates.tsv" using 1:(\$16/1048576) with lines title "resident memory (MiB)", \
     "" using 1:17 axes x1y2 with lines title "goroutines"
unset multiplot
GP
echo "wrote $out"
