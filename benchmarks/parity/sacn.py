"""SAC-N parity: edac.py (the authors' SACTrainer, snu-mllab/EDAC) on sacn's inputs, where eta = 0 turns its
ensemble-similarity term off. Its own file because regenerate.sh runs benchmarks/parity/<algo>.py.

    python benchmarks/parity/sacn.py --reference /work/refs/EDAC --inputs INPUTS [--as-is]
"""

from edac import main

if __name__ == "__main__":
    main()
