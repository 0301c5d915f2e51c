"""Cal-QL parity: cql.py's adapter (the Cal-QL authors' `ConservativeSAC._train_step`, nakamotoo/Cal-QL) on calql's
inputs, where o2o's config has `calibrated=True` and the reference runs with `enable_calql=True`.

    python benchmarks/parity/calql.py --reference /work/refs/Cal-QL --inputs INPUTS
"""

from cql import main

if __name__ == "__main__":
    main()
