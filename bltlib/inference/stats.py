"""What a generation cost: call counters, wall-clock time, Eq. 8 bandwidth.

The Fast BLT paper estimates the memory traffic of batch-1 decoding by
the weights each call must stream from memory (its Eq. 8)::

    BW = b * (N_dec * P_dec + N_enc * (P_enc + P_glob))

with ``b = 2`` bytes per parameter (16-bit weights), ``N_dec`` decoder
calls, ``N_enc`` encoder+global calls (one per patch, the two counted
together) and embedding tables excluded. :meth:`GenerationStats.eq8_gb`
applies it to our counts and our model; :meth:`~GenerationStats.projected_gb`
applies it to our counts with the paper's 3B parameter counts, so a
reader sees what the same call pattern would cost at scale.

The paper's ``N_enc`` counts global calls: in the reference architecture
the decoder also reads the encoder's state of every byte, so our engine
runs the (small) encoder once per byte. :meth:`~GenerationStats.engine_gb`
counts every component with its own calls, the entropy model included.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

BYTES_PER_PARAM = 2  # b in Eq. 8: bf16 / fp16 weights


@dataclass(frozen=True)
class ParamCounts:
    """Non-embedding parameters per component (the Eq. 8 P's)."""

    decoder: float
    encoder_global: float
    encoder: float = 0.0
    global_model: float = 0.0
    entropy: float = 0.0


# Least-squares fit of Eq. 8 to the paper's eight 3B FR->EN rows
# (reference/fast-blt.md section 8): it reproduces each row within 0.4%.
PAPER_3B = ParamCounts(decoder=0.1598e9, encoder_global=2.8525e9)


def eq8_bytes(n_dec: float, n_enc: float, p: ParamCounts,
              bytes_per_param: int = BYTES_PER_PARAM) -> float:
    """Eq. 8 in bytes: b * (N_dec * P_dec + N_enc * (P_enc + P_glob))."""
    if n_dec < 0 or n_enc < 0:
        raise ValueError("call counts must be >= 0")
    return bytes_per_param * (n_dec * p.decoder + n_enc * p.encoder_global)


def param_counts_of(counts: dict[str, int]) -> ParamCounts:
    """``PatchedBLT.param_counts()`` -> :class:`ParamCounts`."""
    return ParamCounts(decoder=counts["decoder"],
                       encoder_global=counts["encoder"] + counts["global"],
                       encoder=counts["encoder"], global_model=counts["global"],
                       entropy=counts.get("entropy", 0))


@dataclass
class GenerationStats:
    """Counters of one ``generate`` call. Calls are forward passes.

    The prompt's prefill counts one call of each component, so for AR
    ``global_calls`` is 1 + the patches closed while generating, and
    ``decoder_calls`` equals ``new_bytes`` (one more when generation ends
    on EOS: the last byte was read before EOS was chosen).
    """

    method: str
    prompt_bytes: int
    params: ParamCounts
    new_bytes: int = 0
    decoder_calls: int = 0
    encoder_calls: int = 0
    global_calls: int = 0
    entropy_calls: int = 0
    drafted_bytes: int = 0
    accepted_bytes: int = 0
    verify_calls: int = 0
    prefill_seconds: float = 0.0
    wall_seconds: float = 0.0
    stop_reason: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    # rows (bytes, patches) of every call per component: a call's cost
    # grows with its rows where compute, not weight traffic, dominates
    call_rows: dict[str, list[int]] = field(default_factory=dict, repr=False)

    @property
    def bytes_per_second(self) -> float:
        return self.new_bytes / self.wall_seconds if self.wall_seconds else 0.0

    @property
    def acceptance_rate(self) -> float | None:
        """Accepted / drafted bytes (None when nothing was drafted)."""
        return (self.accepted_bytes / self.drafted_bytes
                if self.drafted_bytes else None)

    def eq8_gb(self) -> float:
        """Eq. 8 with our model's parameter counts, in GB (1e9 bytes)."""
        return eq8_bytes(self.decoder_calls, self.global_calls, self.params) / 1e9

    def projected_gb(self, p: ParamCounts = PAPER_3B) -> float:
        """Eq. 8 with our call counts and the paper's 3B parameters, in GB."""
        return eq8_bytes(self.decoder_calls, self.global_calls, p) / 1e9

    def engine_gb(self) -> float:
        """Weight bytes our engine streams: every component per own call."""
        p = self.params
        return BYTES_PER_PARAM * (
            self.decoder_calls * p.decoder + self.encoder_calls * p.encoder
            + self.global_calls * p.global_model
            + self.entropy_calls * p.entropy) / 1e9

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        rows = d.pop("call_rows")
        d["mean_rows_per_call"] = {k: sum(v) / len(v) for k, v in rows.items()
                                   if v}
        d.update(bytes_per_second=self.bytes_per_second,
                 acceptance_rate=self.acceptance_rate,
                 eq8_gb=self.eq8_gb(), projected_3b_gb=self.projected_gb(),
                 engine_gb=self.engine_gb())
        return d
