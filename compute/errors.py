"""The root of every plantpulse exception, and the compute layer's own errors."""


class PlantPulseError(Exception):
    """Root of all plantpulse errors."""


class CodecError(PlantPulseError):
    """A bus message cannot be decoded into a ReadingBatch."""
