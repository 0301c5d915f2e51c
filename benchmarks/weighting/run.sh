#!/usr/bin/env bash
# Trajectory weighting (Hong et al., ICLR 2023) where it should matter: uniform vs return-weighted sampling for TD3+BC
# and IQL, 3 seeds, on two mixed Hopper-v5 datasets made from o2o's zoo: 95% random + 5% expert transitions (200k), and
# medium + expert (100k each). One bench per dataset, one report over them.
#   benchmarks/weighting/run.sh OUT        environment: STEPS (default 10000), EVAL_EVERY (5000), WORKERS (2),
#                                          MIXTURES (default "random95-expert5 medium-expert-200k"),
#                                          DATA_ONLY=1 (make the datasets, stop)
# Re-running resumes.
set -euo pipefail
out=$1
mkdir -p "$out/data"
python - "$out/data" <<'PY'
import sys
from pathlib import Path

from o2o.collect.levels import collect
from o2o.data import write_o2o
from o2o.data.dataset import concatenate

root = Path(sys.argv[1])
# (name, [(level, transitions, envs stepping together: few enough that expert episodes of 1000 steps complete)])
mixtures = [("Hopper-v5-random95-expert5", [("random", 190_000, 32), ("expert", 10_000, 2)]),
            ("Hopper-v5-medium-expert-200k", [("medium", 100_000, 10), ("expert", 100_000, 10)])]
for name, parts in mixtures:
    if (root / name).exists():
        continue
    data = [collect("Hopper-v5", level, transitions, seed=seed, num_envs=envs)
            for seed, (level, transitions, envs) in enumerate(parts)]
    shared = ("env_id", "max_episode_steps", "ref_min_score", "ref_max_score")
    metadata = {**{k: data[0].metadata[k] for k in shared if k in data[0].metadata},
                "level": name.removeprefix("Hopper-v5-"),
                "mixture": [{"level": d.metadata["level"], "transitions": len(d), "seed": d.metadata["seed"],
                             "policy": d.metadata.get("policy")} for d in data]}
    write_o2o(concatenate(data, metadata), root / name)
    print(f"wrote {root / name}")
PY
[ -z "${DATA_ONLY:-}" ] || exit 0
for mixture in ${MIXTURES:-random95-expert5 medium-expert-200k}; do  # one bench per dataset: each resumes alone
  o2o bench --algos td3bc,iql --datasets "$out/data/Hopper-v5-$mixture" --samplers uniform,return-weighted --seeds 3 \
    --steps "${STEPS:-10000}" --eval-every "${EVAL_EVERY:-5000}" --eval-episodes 10 --workers "${WORKERS:-2}" \
    --out "$out/bench-$mixture" --quiet
done
o2o report "$out"/bench-* --out "$out/report"
