# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 00 · Preface and setup
#
# This book builds the **Byte Latent Transformer** (BLT, Pagnoni et al.
# 2024) and the three fast decoders of **Fast BLT** (Kallini, Pagnoni,
# Limisiewicz et al. 2026) from scratch, on a laptop CPU, with real data.
#
# **Learning goals**
#
# - Check that your environment works and see what hardware you run on.
# - Know the difference between *fast mode* and *full mode*.
# - Know how the book and the `bltlib` library fit together.

# %%
import bltlib
from bltlib import env

print(env.format_report())
FAST = bltlib.fast_mode()

# %% [markdown]
# ## How to read this book
#
# Every chapter is a notebook in `chapters/`, paired with a plain Python
# twin (`NN_name.py`, the jupytext `py:percent` format) that is easier to
# read in a diff. Open the `.ipynb` in JupyterLab:
#
# ```
# .venv/bin/jupyter lab chapters/
# ```
#
# The chapters are sequential:
#
# | # | chapter | you build or see |
# |---|---|---|
# | 00 | Preface | this page |
# | 01 | Why bytes | a BPE tokenizer's fragility next to raw bytes |
# | 02 | Entropy patching | an entropy model, and where patches start |
# | 03-05 | The BLT | hash n-grams, encoder, global model, decoder, training |
# | 06 | Generation cost | KV caches and the memory-bandwidth estimate |
# | 07-10 | Fast decoders | BLT-D, BLT-S and BLT-DV |
# | 11 | The frontier | bandwidth against quality for every decoder |
#
# Each chapter writes a short didactic version of a component inline,
# checks it against `bltlib`, then uses the library from there on. The
# library is the single source of truth; the chapters never drift from it.

# %% [markdown]
# ## Fast mode and full mode
#
# Training is the slow part. Every chapter reads one environment
# variable, `BLT_FAST`:
#
# - **full mode** (the default) is what you run as a student: each
#   chapter takes minutes on a 2-core laptop CPU;
# - **fast mode** (`BLT_FAST=1`, which the test suite sets) shrinks every
#   training run to seconds, so the whole book runs under `nbval` in CI.
#   The numbers it prints are then much worse; the code paths are the same.

# %%
print("fast mode" if FAST else "full mode")

# %% [markdown]
# ## Devices
#
# `bltlib` runs on the CPU everywhere and uses CUDA when it is present.
# Set `BLT_DEVICE=cpu` to force the CPU. Comparisons between decoders are
# always run side by side in one process, so their ratios are honest even
# on a slow machine.

# %%
device = bltlib.get_device()
print(device.type in ("cpu", "cuda"))

# %% [markdown]
# ## Bytes are the vocabulary
#
# The model never sees a tokenizer: its vocabulary is the 256 byte values
# plus four special ids, exactly as in the reference BLT. The next chapter
# shows why that matters.

# %%
# NBVAL_CHECK_OUTPUT
from bltlib import bytes as B

print(B.VOCAB_SIZE, B.encode("BLT", bos=True))

# %% [markdown]
# ## Summary
#
# - `bltlib.env.format_report()` tells you what you are running on.
# - `BLT_FAST=1` selects fast mode; unset, you get full mode.
# - The vocabulary is 260 ids: PAD, BOS, EOS, MASK, then bytes at offset 4.
#
# ## Exercises
#
# 1. Which id does the byte `"A"` (0x41) get?
# 2. How many ids does the text `"é"` take, and why?

# %%
# Answers, checked.
assert B.encode("A") == [0x41 + B.OFFSET]
assert len(B.encode("é")) == 2  # U+00E9 is two bytes in UTF-8
print("exercises checked")
