#!/usr/bin/env bash
# make lesson: the lesson of docs/exactly-once.md, run for real.
#
# Generates a payments log and a page-view log (with producer-retry duplicates), runs
# the financial close (2PC), the page-view counter in its three modes, and the
# transactional outbox, each once without crashes (for throughput and disk forces) and
# once with seeded crash injection (kill -9 at random points of progress, spread over
# every process, plus tpc's own fault points), then replays. Every result is checked
# against a truth computed here, with awk, from the source alone. Prints one table and
# writes it, the replay checks and a plot (gnuplot) into BUILD/lesson-report/; with
# LESSON_DOCS=1 (`make lesson-docs`), and only when every guarantee held, into
# docs/exactly-once.md between its markers and docs/exactly-once.svg instead.
# Exit status: 1 if any guarantee the lesson claims does not hold; a plot that could
# not be drawn (gnuplot missing or failing) is a warning only: exit 0.
#
#   scripts/lesson.sh [BUILD]        BUILD: a non-sanitizer build folder (default build)
#   LESSON_SEED, LESSON_PAYMENTS, LESSON_PAGEVIEWS, LESSON_ORDERS, LESSON_KILLS: sizes
#   LESSON_DOCS=1 rewrites the tracked docs; KEEP=1 keeps the work folder.
set -euo pipefail

BUILD=${1:-build}
BIN="$(cd "$BUILD" && pwd)"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SEED=${LESSON_SEED:-42}
PAYMENTS=${LESSON_PAYMENTS:-40000}
PAGEVIEWS=${LESSON_PAGEVIEWS:-40000}
ORDERS=${LESSON_ORDERS:-1500}
KILLS=${LESSON_KILLS:-24}
BATCH=200
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tpc-lesson.XXXXXX")
if [ "${LESSON_DOCS:-0}" = 1 ]; then
    DOC="$ROOT/docs/exactly-once.md" PLOT="$ROOT/docs/exactly-once.svg"
else # the tracked docs stay as they are; this run's copy goes to the build folder
    mkdir -p "$BIN/lesson-report"
    DOC="$BIN/lesson-report/exactly-once.md" PLOT="$BIN/lesson-report/exactly-once.svg"
    cp "$ROOT/docs/exactly-once.md" "$DOC"
fi
L="$BIN/lesson"
FAILED=0
PLOT_PROBLEM=""   # why there is no new plot: a warning, not a broken guarantee

cleanup() {
    if [ "${KEEP:-0}" = 1 ] || [ "$FAILED" != 0 ] || [ "$1" != 0 ]; then
        echo "lesson: work folder kept: $WORK" >&2
    else rm -rf "$WORK"; fi
}
trap 'cleanup $?' EXIT

say() { echo "lesson: $*" >&2; }
bad() { say "FAIL: $*"; FAILED=1; }

# ---- the truth, from the source alone (awk over `lesson-log dump`) ----

# payments in [from, to) -> day,merchant,currency,payments,amount_minor
truth_close() { # log from to
    "$L/lesson-log" dump --log "$1" | awk -F'\t' -v from="$2" -v to="$3" '
        $1 >= from && $1 < to { split($3, f, " "); k = substr(f[3], 1, 10) "," f[4] "," f[6]
                                n[k]++; a[k] += f[5] }
        END { for (k in n) printf "%s,%d,%.0f\n", k, n[k], a[k] }' | sort
}

# distinct event ids per group (4th field) -> group,count
truth_distinct() { # log
    "$L/lesson-log" dump --log "$1" | awk -F'\t' '
        { split($3, f, " "); if (!(f[2] in seen)) { seen[f[2]] = 1; n[f[4]]++ } }
        END { for (g in n) printf "%s,%d\n", g, n[g] }' | sort
}

# orders in the order service's store -> group,count and the close truth
truth_orders_counts() { # db
    "$L/lesson-outbox" dump --db "$1" | awk '{ n[$4]++ } END { for (g in n) printf "%s,%d\n", g, n[g] }' | sort
}
truth_orders_close() { # db
    "$L/lesson-outbox" dump --db "$1" | awk '{ k = substr($3, 1, 10) "," $4 "," $6; n[k]++; a[k] += $5 }
        END { for (k in n) printf "%s,%d,%.0f\n", k, n[k], a[k] }' | sort
}

close_report() { # ledger data dir -> day,merchant,currency,payments,amount_minor
    "$L/lesson-close" report --ledger-data "$1" | tail -n +2 | cut -d, -f1-5 | sort
}
pv_report() { # lesson-pageviews report args... -> group,count
    "$L/lesson-pageviews" report "$@" | tail -n +2 | sort
}

# Compare a result with the truth: "exact", "over-count N", "under-count N" or
# "wrong: +N/-M" (counts in events, per key, summed).
compare() { # truth result ncols-of-key
    awk -F, -v nk="$3" '
        function key() { k = $1; for (i = 2; i <= nk; i++) k = k "," $i; return k }
        NR == FNR { t[key()] = $(nk + 1); next }
        { r[key()] = $(nk + 1) }
        END { for (k in t) { d = r[k] - t[k]; if (d > 0) over += d; else under -= d }
              for (k in r) if (!(k in t)) over += r[k]
              if (!over && !under) print "exact"
              else if (!under) print "over-count " over
              else if (!over) print "under-count " under
              else print "wrong: +" over "/-" under }' "$1" "$2"
}
amount_diff() { # truth result (close CSVs): result minus truth, in minor units
    awk -F, 'NR == FNR { t += $5; next } { r += $5 } END { printf "%.0f\n", r - t }' "$1" "$2"
}

# ---- running scenarios ----

field() { # key result-line
    tr ' ' '\n' <<<"$2" | awk -F= -v k="$1" '$1 == k { print $2; exit }'
}

run() { # name lesson-run args...
    local name=$1; shift
    local out="$WORK/$name.result"
    if ! "$L/lesson-run" "$@" --bin "$BIN" --seed "$SEED" >"$out" 2>"$WORK/$name.stderr"; then
        cat "$WORK/$name.stderr" >&2
        bad "scenario $name did not finish"
        exit 1
    fi
    grep '^result ' "$out"
}

per_sec() { awk -v e="$1" -v ms="$2" 'BEGIN { printf "%d", (ms > 0 ? e * 1000 / ms : 0) }'; }
per_event() { awk -v f="$1" -v e="$2" 'BEGIN { printf "%.4f", (e > 0 ? f / e : 0) }'; }

ROWS=()   # pipeline|guarantee|events|crashes|result|events/s|forces/event|measured
add_row() { ROWS+=("$1|$2|$3|$4|$5|$6|$7|$8"); }

crashes_text() { # crash-run result line
    local k f
    k=$(field kills "$1"); f=$(field fault_crashes "$1")
    if [ "$f" -gt 0 ]; then echo "$k kill -9 + $f fault points"; else echo "$k kill -9"; fi
}

# ---- 1. the sources ----

say "generating $PAYMENTS payments and $PAGEVIEWS page views (seed $SEED)"
"$L/lesson-log" gen --log "$WORK/payments" --kind payments --count "$PAYMENTS" --seed "$SEED" >&2
"$L/lesson-log" gen --log "$WORK/pageviews" --kind pageviews --count "$PAGEVIEWS" --seed "$SEED" \
    --dup-pct 2 >&2
PAY_N=$("$L/lesson-log" info --log "$WORK/payments" | awk '$1 == "records" { print $2 }')
PV_N=$("$L/lesson-log" info --log "$WORK/pageviews" | awk '$1 == "records" { print $2 }')
truth_close "$WORK/payments" 0 "$PAY_N" >"$WORK/truth-close.csv"
truth_distinct "$WORK/pageviews" >"$WORK/truth-pv.csv"
PV_DISTINCT=$(awk -F, '{ s += $2 } END { print s }' "$WORK/truth-pv.csv")
PV_DUPS=$((PV_N - PV_DISTINCT))

# ---- 2. the financial close: exactly-once through tpc ----

say "financial close: a clean run, then $KILLS kill -9 spread over the aggregator, both participants and the coordinator"
clean=$(run close-clean close --work "$WORK/close-clean" --log "$WORK/payments" --batch $BATCH --forces)
crash=$(run close-crash close --work "$WORK/close" --log "$WORK/payments" --batch $BATCH \
        --kills "$KILLS" --fault-pct 1)
close_report "$WORK/close/ledger" >"$WORK/close-report.csv"
"$L/lesson-close" report --ledger-data "$WORK/close/ledger" --json >"$WORK/close-report.json"
err=$(compare "$WORK/truth-close.csv" "$WORK/close-report.csv" 3)
amt=$(amount_diff "$WORK/truth-close.csv" "$WORK/close-report.csv")
[ "$err" = exact ] && [ "$amt" = 0 ] || bad "the close is not exact: $err, amounts off by $amt"
[ "$(field kills "$crash")" -ge 20 ] || bad "fewer than 20 kills landed"
if command -v python3 >/dev/null 2>&1; then # the JSON form of the report says the same
    js=$(python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
print(sum(r["payments"] for r in d["days"]), sum(r["amount_minor"] for r in d["days"]))' \
        "$WORK/close-report.json")
    [ "$js" = "$(awk -F, '{ c += $4; a += $5 } END { printf "%d %.0f", c, a }' "$WORK/truth-close.csv")" ] ||
        bad "the JSON close report does not add up to the source: $js"
fi
add_row "financial close" "exactly-once: 2PC across ledger + offset store, keyed batches" \
    "$(field events "$crash")" "$(crashes_text "$crash")" "$err" \
    "$(per_sec "$(field events "$clean")" "$(field elapsed_ms "$clean")")" \
    "$(per_event "$(field forces "$clean")" "$(field events "$clean")")" "aggregator + tpc"
cp "$WORK/close-report.csv" "$WORK/close-report.keep"

# ---- 3. replay and time travel on the close ----

say "close: replay into a fresh sink, replay over the live sink, as-of queries"
REPLAY=()
FIRST_DAY=$("$L/lesson-log" info --log "$WORK/payments" | awk '$1 == "first_time" { print substr($2, 1, 10) }')
run close-replay-fresh close --work "$WORK/close-replay" --log "$WORK/payments" --batch 300 \
    --from-time "$FIRST_DAY" >/dev/null
close_report "$WORK/close-replay/ledger" >"$WORK/close-replay.csv"
if cmp -s "$WORK/close-replay.csv" "$WORK/close-report.csv"; then r=matches; else r=DIFFERS; bad "replay into a fresh sink differs"; fi
REPLAY+=("close: replay from time $FIRST_DAY into a fresh ledger (batches of 300, not 200)|$r the live close")

X=$((PAY_N * 3 / 5 + 17))
run close-replay-x close --work "$WORK/close-replay-x" --log "$WORK/payments" --batch $BATCH \
    --from "$X" >/dev/null
close_report "$WORK/close-replay-x/ledger" >"$WORK/close-replay-x.csv"
truth_close "$WORK/payments" "$X" "$PAY_N" >"$WORK/truth-close-x.csv"
r=$(compare "$WORK/truth-close-x.csv" "$WORK/close-replay-x.csv" 3)
[ "$r" = exact ] || bad "replay from offset $X: $r"
REPLAY+=("close: replay from offset $X into a fresh ledger|$r (against the source from $X on)")

"$BIN/tools/tpc-kv" --dump --data "$WORK/close/ledger" >"$WORK/ledger.before"
"$BIN/tools/tpc-kv" --dump --data "$WORK/close/offsets" >"$WORK/offsets.before"
over=$(run close-replay-over close --work "$WORK/close" --log "$WORK/payments" --batch $BATCH --from 0)
"$BIN/tools/tpc-kv" --dump --data "$WORK/close/ledger" >"$WORK/ledger.after"
"$BIN/tools/tpc-kv" --dump --data "$WORK/close/offsets" >"$WORK/offsets.after"
confirmed=$(field confirmed "$(grep '^job ' "$WORK/close-replay-over.result")")
if cmp -s "$WORK/ledger.before" "$WORK/ledger.after" && cmp -s "$WORK/offsets.before" "$WORK/offsets.after"
then r="changed nothing ($confirmed batches re-begun under their keys: all ALREADY_COMMITTED)"
else r="CHANGED the sink"; bad "replay over the live sink changed it"; fi
REPLAY+=("close: replay from offset 0 over the live ledger|$r")

for X in $((PAY_N / 3)) $((PAY_N * 3 / 4 + 1))
do
    "$L/lesson-close" asof --ledger-data "$WORK/close/ledger" --offsets-data "$WORK/close/offsets" \
        --log "$WORK/payments" --offset "$X" 2>/dev/null | tail -n +2 | cut -d, -f1-5 | sort >"$WORK/asof.csv"
    truth_close "$WORK/payments" 0 "$X" >"$WORK/truth-asof.csv"
    r=$(compare "$WORK/truth-asof.csv" "$WORK/asof.csv" 3)
    [ "$r" = exact ] || bad "as of offset $X: $r"
    REPLAY+=("close: \"what was the close as of offset $X\" (ledger history + source)|$r")
done

# ---- 4. the page-view counter in three modes ----

say "page views: $PV_N records ($PV_DUPS producer-retry duplicates), three modes"
pv_mode() { # mode guarantee kills fault-pct [extra args]
    local mode=$1 text=$2 kills=$3 fault=$4; shift 4
    local tag=pv-$mode${1:+-nodedupe}
    local clean crash rep err
    clean=$(run "$tag-clean" pageviews --mode "$mode" --work "$WORK/$tag-clean" \
            --log "$WORK/pageviews" --batch $BATCH --forces "$@")
    crash=$(run "$tag" pageviews --mode "$mode" --work "$WORK/$tag" --log "$WORK/pageviews" \
            --batch $BATCH --kills "$kills" --fault-pct "$fault" "$@")
    if [ "$mode" = exactly-once ]; then pv_report --ledger-data "$WORK/$tag/ledger" >"$WORK/$tag.csv"
    else pv_report --store "$WORK/$tag/store" >"$WORK/$tag.csv"; fi
    err=$(compare "$WORK/truth-pv.csv" "$WORK/$tag.csv" 1)
    case "$err" in over-count*)
        local n=${err#over-count }
        if [ -z "${1:-}" ]; then err="$err ($PV_DUPS producer retries + $((n - PV_DUPS)) crash replays)"
        else err="$err (the producer retries)"; fi;;
    esac
    add_row "page views" "$text" "$(field events "$crash")" "$(crashes_text "$crash")" "$err" \
        "$(per_sec "$(field events "$clean")" "$(field elapsed_ms "$clean")")" \
        "$(per_event "$(field forces "$clean")" "$(field events "$clean")")" \
        "$([ "$mode" = exactly-once ] && echo "consumer + tpc" || echo consumer)"
    PV_ERR=$err
}
PV_KILLS=$((KILLS / 3))
LOCAL_KILLS=$((KILLS * 2 / 3)) # a kill must land between two forces to show: give it chances
pv_mode at-least-once "at-least-once: counts, then the offset" "$LOCAL_KILLS" 0
case "$PV_ERR" in over-count*|exact) ;; *) bad "at-least-once page views: $PV_ERR";; esac
pv_mode effectively-once "effectively-once: idempotent consumer (ids in the same local txn)" "$LOCAL_KILLS" 0
[ "$PV_ERR" = exact ] || bad "effectively-once page views: $PV_ERR"
pv_mode exactly-once "exactly-once: 2PC + event-id dedupe" "$PV_KILLS" 1
[ "$PV_ERR" = exact ] || bad "exactly-once page views: $PV_ERR"
pv_mode exactly-once "2PC without event-id dedupe" "$PV_KILLS" 1 --no-dedupe
[ "$PV_ERR" = "over-count $PV_DUPS (the producer retries)" ] ||
    bad "2PC without dedupe: expected over-count $PV_DUPS, got $PV_ERR"

say "page views: replay"
run pv-replay-fresh pageviews --mode effectively-once --work "$WORK/pv-replay" --log "$WORK/pageviews" \
    --from-time "$FIRST_DAY" >/dev/null
pv_report --store "$WORK/pv-replay/store" >"$WORK/pv-replay.csv"
if cmp -s "$WORK/pv-replay.csv" "$WORK/pv-effectively-once.csv"; then r=matches; else r=DIFFERS; bad "page-view replay into a fresh store differs"; fi
REPLAY+=("page views, effectively-once: replay from time $FIRST_DAY into a fresh store|$r the live counts")
run pv-replay-over pageviews --mode effectively-once --work "$WORK/pv-effectively-once" \
    --log "$WORK/pageviews" --from 0 >/dev/null
pv_report --store "$WORK/pv-effectively-once/store" >"$WORK/pv-eo-after.csv"
skipped=$(field dups_skipped "$(grep '^job ' "$WORK/pv-replay-over.result")")
if cmp -s "$WORK/pv-eo-after.csv" "$WORK/pv-effectively-once.csv"; then r="changed nothing ($skipped events recognised by id)"
else r="CHANGED the counts"; bad "page-view replay over the live store changed it"; fi
REPLAY+=("page views, effectively-once: replay from offset 0 over the live store|$r")
cp "$WORK/pv-at-least-once.csv" "$WORK/pv-alo-before.csv"
run pv-replay-alo pageviews --mode at-least-once --work "$WORK/pv-at-least-once" \
    --log "$WORK/pageviews" --from 0 >/dev/null
pv_report --store "$WORK/pv-at-least-once/store" >"$WORK/pv-alo-after.csv"
r=$(compare "$WORK/pv-alo-before.csv" "$WORK/pv-alo-after.csv" 1)
REPLAY+=("page views, at-least-once: replay from offset 0 over the live store|$r (why replay needs idempotence)")

# ---- 5. the transactional outbox ----

say "outbox: $ORDERS orders, dual write versus outbox + relay, with crashes"
OB_KILLS=$((KILLS / 4))
ob_clean_d=$(run ob-dual-clean outbox --mode dual-write --work "$WORK/ob-dual-clean" --orders "$ORDERS" --forces)
ob_dual=$(run ob-dual outbox --mode dual-write --work "$WORK/ob-dual" --orders "$ORDERS" \
          --kills "$OB_KILLS" --crash-pct 1)
ob_clean=$(run ob-clean outbox --mode outbox --work "$WORK/ob-clean" --orders "$ORDERS" --forces)
ob=$(run ob outbox --mode outbox --work "$WORK/ob" --orders "$ORDERS" --kills "$OB_KILLS" --crash-pct 1)

ob_consumer() { # work-dir tag -> error of an idempotent consumer over its log
    run "$2-eo" pageviews --mode effectively-once --work "$WORK/$2-eo" --log "$1/log" >/dev/null
    pv_report --store "$WORK/$2-eo/store" >"$WORK/$2-eo.csv"
    truth_orders_counts "$1/db" >"$WORK/$2-truth.csv"
    compare "$WORK/$2-truth.csv" "$WORK/$2-eo.csv" 1
}
ob_log_n() { "$L/lesson-log" info --log "$1/log" | awk '$1 == "records" { print $2 }'; }
e=$(ob_consumer "$WORK/ob-dual" ob-dual)
case "$e" in under-count*) ;; exact) say "note: no dual-write crash landed between commit and publish";; *) bad "dual write: $e";; esac
add_row "orders -> log" "dual write: commit the order, then publish (no outbox)" "$ORDERS" \
    "$(crashes_text "$ob_dual")" "$e (events lost; the consumer downstream is idempotent)" \
    "$(per_sec "$ORDERS" "$(field elapsed_ms "$ob_clean_d")")" \
    "$(per_event "$(field forces "$ob_clean_d")" "$ORDERS")" "order service"
OB_RECORDS=$(ob_log_n "$WORK/ob")
e=$(ob_consumer "$WORK/ob" ob)
[ "$e" = exact ] || bad "outbox + idempotent consumer: $e"
add_row "orders -> log" "outbox + relay (at least once) -> idempotent consumer" "$ORDERS" \
    "$(crashes_text "$ob")" "$e ($((OB_RECORDS - ORDERS)) relay duplicates absorbed)" \
    "$(per_sec "$ORDERS" "$(field elapsed_ms "$ob_clean")")" \
    "$(per_event "$(field forces "$ob_clean")" "$ORDERS")" "order service + relay"

ob2pc=$(run ob-2pc close --work "$WORK/ob-2pc" --log "$WORK/ob/log" --batch 100 --kills 8 --fault-pct 1)
close_report "$WORK/ob-2pc/ledger" >"$WORK/ob-2pc.csv"
truth_orders_close "$WORK/ob/db" >"$WORK/ob-2pc-truth.csv"
e=$(compare "$WORK/ob-2pc-truth.csv" "$WORK/ob-2pc.csv" 3)
[ "$e" = "over-count $((OB_RECORDS - ORDERS))" ] || bad "outbox + 2PC close: expected over-count $((OB_RECORDS - ORDERS)), got $e"
add_row "orders -> log" "outbox + relay -> 2PC close without event-id dedupe" "$OB_RECORDS" \
    "producer: $(crashes_text "$ob"); consumer: $(crashes_text "$ob2pc")" \
    "$e (the relay's duplicates)" "-" "-" "(as above)"
ob2pcd=$(run ob-2pc-dedupe close --work "$WORK/ob-2pc-dedupe" --log "$WORK/ob/log" --batch 100 \
         --kills 8 --fault-pct 1 --dedupe)
close_report "$WORK/ob-2pc-dedupe/ledger" >"$WORK/ob-2pc-dedupe.csv"
e=$(compare "$WORK/ob-2pc-truth.csv" "$WORK/ob-2pc-dedupe.csv" 3)
[ "$e" = exact ] || bad "outbox + 2PC close with dedupe: $e"
add_row "orders -> log" "outbox + relay -> 2PC close + event-id dedupe (--dedupe)" "$OB_RECORDS" \
    "producer: $(crashes_text "$ob"); consumer: $(crashes_text "$ob2pcd")" "$e" "-" "-" "(as above)"

# ---- 6. the table, the replay checks, the plot, the doc ----

TABLE="$WORK/table.md"
{
    echo "| pipeline | guarantee and mechanism | events | crashes injected | result vs. the source | events/s | disk forces/event | cost measured on |"
    echo "| --- | --- | ---: | --- | --- | ---: | ---: | --- |"
    for row in "${ROWS[@]}"; do
        IFS='|' read -r a b c d e f g h <<<"$row"
        echo "| $a | $b | $c | $d | $e | $f | $g | $h |"
    done
} >"$TABLE"
REPLAYS="$WORK/replay.md"
{
    echo "| replay | result |"
    echo "| --- | --- |"
    for row in "${REPLAY[@]}"; do IFS='|' read -r a b <<<"$row"; echo "| $a | $b |"; done
} >"$REPLAYS"

echo
echo "tpc lesson: seed $SEED, $(nproc) CPUs, batches of $BATCH events"
echo
cat "$TABLE"
echo
cat "$REPLAYS"
echo

# Cost against guarantee: the page-view modes and the close, forces/event and us/event,
# ordered from the weakest guarantee to the strongest. (The order-service rows measure a
# producer doing one local commit per order, a different unit: they stay in the table.)
PLOTDATA="$WORK/plot.dat"
for row in "${ROWS[@]}"; do
    IFS='|' read -r a b c d e f g h <<<"$row"
    case "$b" in
        at-least-once*) label='views:\nat-least-once'; order=1;;
        effectively-once*) label='views:\neffectively-once'; order=2;;
        2PC\ without*) label='views: 2PC\nno id dedupe'; order=3;;
        exactly-once:\ 2PC\ +*) label='views: 2PC\n+ id dedupe'; order=4;;
        exactly-once:\ 2PC\ across*) label='close:\n2PC'; order=5;;
        *) continue;;
    esac
    us=$(awk -v r="$f" 'BEGIN { printf "%.1f", (r > 0 ? 1e6 / r : 0) }')
    echo "$order \"$label\\n(${e%% (*})\" $g $us"
done | sort -n | cut -d' ' -f2- >"$PLOTDATA"
if command -v gnuplot >/dev/null 2>&1; then
    gnuplot <<EOF || PLOT_PROBLEM="gnuplot failed"
set terminal svg size 1300,540 font "sans,11" background rgb "white"
set output "$PLOT"
set multiplot layout 1,2 title "Cost against guarantee: make lesson, seed $SEED, $(nproc) CPUs (under each bar: the result under crashes)"
set style data histograms
set style fill solid 0.75 border -1
set boxwidth 0.7
set xtics font ",9" nomirror
set bmargin 6
set grid ytics
set key off
set yrange [0:*]
set offsets 0, 0, graph 0.12, 0
set ylabel "disk forces per event"
plot "$PLOTDATA" using 2:xtic(1) lc rgb "#4477aa", '' using 0:2:(sprintf("%.4f", \$2)) with labels offset 0,0.8 font ",9"
set ylabel "microseconds per event (1 / throughput)"
plot "$PLOTDATA" using 3:xtic(1) lc rgb "#cc6677", '' using 0:3:(sprintf("%.1f", \$3)) with labels offset 0,0.8 font ",9"
unset multiplot
EOF
else
    PLOT_PROBLEM="gnuplot is not installed (scripts/install-deps.sh --lesson installs it)"
fi

# Write between the markers of the doc (the rest of it is prose, kept as it is).
replace_block() { # marker file-with-content
    awk -v m="$1" -v f="$2" '
        $0 == "<!-- " m ":begin -->" { print; while ((getline l < f) > 0) print l; skip = 1; next }
        $0 == "<!-- " m ":end -->" { skip = 0 }
        !skip { print }' "$DOC" >"$DOC.new" && mv "$DOC.new" "$DOC"
}
if [ "$FAILED" != 0 ] && [ "${LESSON_DOCS:-0}" = 1 ]; then
    say "a guarantee did not hold: docs/exactly-once.md left as it was"
elif [ -f "$DOC" ]; then
    { echo; echo "Generated by \`make lesson\` (seed $SEED, $(nproc) CPUs, $(date -u +%Y-%m-%d)); batches of $BATCH events."
      echo; cat "$TABLE"; echo; } >"$WORK/table.block"
    { echo; cat "$REPLAYS"; echo; } >"$WORK/replay.block"
    { echo; echo "![Cost against guarantee](exactly-once.svg)"; echo; } >"$WORK/plot.block"
    replace_block lesson-table "$WORK/table.block"
    replace_block lesson-replay "$WORK/replay.block"
    [ -n "$PLOT_PROBLEM" ] || replace_block lesson-plot "$WORK/plot.block"
    what="the table, the replay checks and the plot"
    [ -z "$PLOT_PROBLEM" ] || what="the table and the replay checks (no new plot)"
    say "wrote $what into $DOC"
fi

[ -z "$PLOT_PROBLEM" ] || say "WARNING: no plot: $PLOT_PROBLEM"
if [ "$FAILED" != 0 ]; then say "some guarantee did not hold (see FAIL above)"; exit 1; fi
say "every guarantee held"
