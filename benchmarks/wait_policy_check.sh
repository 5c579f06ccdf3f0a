#!/bin/sh
# OMP_WAIT_POLICY on a quiet machine: the PyTorch VAE step (benchmarks/vae.py --mode profile, synthetic data)
# on two pinned cores, with libgomp's default wait policy and with PASSIVE, idle and with one busy-looping
# process sharing the cores. Prints one line per run: policy, load, threads, ms per step.
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
$PY -c "import torch; print('torch', torch.__version__); print(torch.__config__.parallel_info())" 2>&1 | head -12
run() { # $1 policy $2 load $3 threads
  if [ "$1" = PASSIVE ]; then export OMP_WAIT_POLICY=PASSIVE; else unset OMP_WAIT_POLICY; fi
  r=$(OMP_NUM_THREADS=$3 taskset -c 0,1 $PY vae.py --data synthetic --threads $3 --rows 6000 --mode profile --steps ${STEPS:-200} | sed -n 's/^@result //p')
  echo "$1 load=$2 threads=$3 $r"
}
for rep in 1 2 3; do
  for pol in default PASSIVE; do run $pol idle 2; run $pol idle 1; done
done
taskset -c 1 $PY -c "while True: pass" & HOG=$!
for rep in 1 2; do
  for pol in default PASSIVE; do run $pol busy 2; run $pol busy 1; done
done
kill $HOG
