// Module kernels.
