# Shared by the quality rounds (sourced, not run): the data, the CLI, the options every command gets and the score.
# The caller sets OUT (its results folder) first; every setting below can be given in the environment.
DATA=${DATA:-data/mnist-10k/images-idx3-ubyte.gz}
COUNT=${COUNT:-1000}
THREADS=${THREADS:-1}
DDPM=(${DDPM:-dotnet src/Ddpm.Cli/bin/Release/net10.0/Ddpm.Cli.dll})
[ -n "${DDPM_PREBUILT:-}" ] || dotnet build src/Ddpm.Cli -c Release -v q -nologo > /dev/null
mkdir -p "$OUT"
COMMON=(--no-progress --threads "$THREADS" --device cpu)

score() { # checkpoint, report.json: FD_classifier against all 10,000 digits, with the real-vs-real floor
  [ -f "$2" ] || "${DDPM[@]}" distance "$1" "$DATA" --classifier mnist --count "$COUNT" --sampler dpm-solver --seed 0 \
    -o "$2" "${COMMON[@]}" > "$2.log"
}

report_row() { # label, report.json, options shown: one row of a distance table (the columns of tables.md)
  jq -r --arg l "$1" --arg o "${3-}" '"| \($l) | `\($o)` | \(.distance * 100 | round / 100) | \(.a.score.mean * 100 | round / 100) | \(.class_histogram_distance * 1000 | round / 1000) | \(.floor.distance * 100 | round / 100) |"' "$2"
}

curve_rows() { # metrics.jsonl [run label]: the run's evaluations of $COUNT samples as table rows, in step order
  local key=2 prefix=""
  if [ -n "${2-}" ]; then key=3; prefix="| $2 "; fi
  jq -r --arg p "$prefix" 'select(.eval != null and .eval_count == '"$COUNT"') | "\($p)| \(.step) | \((.train_sec // 0) / 60 * 10 | round / 10) | \(.eval.fd_classifier * 100 | round / 100) | \(.eval.fd_classifier_floor * 100 | round / 100) | \(.eval.fd_classifier_score * 100 | round / 100) | \(.eval.fd_classifier_class_imbalance * 1000 | round / 1000) |"' \
    "$1" | sort -t'|' -k"$key,$key"n
}
