"""Inference: KV-cached BLT generation, cost counters and the bandwidth model.

* :mod:`~bltlib.inference.entropy_stream`: the entropy model, one byte at a time;
* :mod:`~bltlib.inference.session`: the cached BLT state (prefill, push, rollback);
* :mod:`~bltlib.inference.sampling`: greedy / temperature / top-k / top-p;
* :mod:`~bltlib.inference.stats`: call counters and Eq. 8 bandwidth;
* :mod:`~bltlib.inference.generate`: ``generate(model, prompt, method=...)``;
* :mod:`~bltlib.inference.reference`: the no-cache loop of the official code.
"""
