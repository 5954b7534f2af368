"""Pure core of plantpulse: domain model, wire codec and numba kernels. No I/O, no clock."""
