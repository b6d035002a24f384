#!/bin/sh
# `make fuzz`: each target fuzzed for its share of MINUTES (weighted by risk: what a
# stranger's bytes reach first gets most), then its corpus minimised in place.
# cargo fuzz runs on the stable toolchain: RUSTC_BOOTSTRAP=1 lets it pass the
# sanitizer's -Z flags. A crash stops the run; its input is in artifacts/TARGET/: fix
# the bug and keep the input in regressions/TARGET/ (make test replays it).
# Usage: run.sh MINUTES [TARGET...]
set -eu
cd "$(dirname "$0")"
minutes=${1:-60}
shift || true
export RUSTC_BOOTSTRAP=1
# target:share of the time (percent):largest input
plan="rtmp_session:25:65536 flv_media:15:65536 aggregate_message:10:65536
mesh_frames:15:8192 config_file:10:16384 proxy_header:5:4096 forwarded_headers:5:4096
hls_request:5:256 push_replies:10:65536"
cargo fuzz build -O
for entry in $plan; do
    target=${entry%%:*}
    rest=${entry#*:}
    share=${rest%%:*}
    max_len=${rest#*:}
    if [ $# -gt 0 ] && ! echo " $* " | grep -q " $target "; then
        continue
    fi
    seconds=$((minutes * 60 * share / 100))
    mkdir -p "corpus/$target"
    echo "== $target: $seconds s"
    cargo fuzz run -O "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$seconds" -max_len="$max_len" -rss_limit_mb=2048 \
        -print_final_stats=1 2>&1 | grep -E "^(stat::number_of_executed_units|stat::new_units_added|==|SUMMARY|.*panicked)" || true
    if [ -n "$(ls "artifacts/$target" 2>/dev/null)" ]; then
        echo "$target crashed: see artifacts/$target/" >&2
        exit 1
    fi
    cargo fuzz cmin -O "$target" "corpus/$target" -- -max_len="$max_len" >/dev/null 2>&1
    echo "   corpus: $(ls "corpus/$target" | wc -l) inputs"
done
