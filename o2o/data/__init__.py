"""Datasets: the `Dataset` struct-of-arrays, readers and writers, validation and statistics (NumPy only), the
device-resident replay buffer (`o2o.data.replay`, JAX) and the return-weighted batch samplers (`o2o.data.samplers`)."""

from o2o.data.dataset import Dataset
from o2o.data.hdf5_npz import read_d4rl_hdf5, read_npz, write_d4rl_hdf5, write_npz
from o2o.data.io import content_hash, detect_format, load_dataset, read_minari, read_o2o, write_minari, write_o2o
from o2o.data.quality import dataset_quality
from o2o.data.stats import describe, state_action_coverage, trajectory_quality
from o2o.data.validate import Spaces, check_spaces, dataset_from_arrays

__all__ = [
    "Dataset", "Spaces", "check_spaces", "content_hash", "dataset_from_arrays", "dataset_quality", "describe",
    "detect_format", "load_dataset", "read_d4rl_hdf5", "read_minari", "read_npz", "read_o2o", "state_action_coverage",
    "trajectory_quality", "write_d4rl_hdf5", "write_minari", "write_npz", "write_o2o",
]
