"""Everything that touches files: checkpoints, models named by reference, data, and the HDF5 store.

``store`` is the only module that reads or writes Landscape's HDF5 format.
"""
