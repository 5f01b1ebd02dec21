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
