"""What a model needs to know about its dataset."""

from dataclasses import dataclass


@dataclass(frozen=True)
class DataSpec:
    """Shape information passed from a dataset to `models.<arch>.build`.

    Attributes:
        kind: "image" (inputs NHWC float) or "sequence" (inputs int tokens [n, length]).
        input_shape: shape of one input example, e.g. (32, 32, 3) or (15,).
        num_outputs: output units per example (image) or per position (sequence).
        vocab_size: token vocabulary for sequences, None for images.
    """

    kind: str
    input_shape: tuple
    num_outputs: int
    vocab_size: int | None = None
