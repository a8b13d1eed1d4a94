"""Learning algorithms for spiking networks, each a reusable component (see docs/learning.md).

* `spikeprop`: SpikeProp, first-spike-time backprop with SRM neurons (Bohte et al. 2002).
* `stdp`: trace STDP and the Diehl & Cook (2015) unsupervised layer.
* `softlif`: the soft LIF rate for ANN training and spiking conversion (Hunsberger & Eliasmith 2015).
* `bpstdp`: BP-STDP, error-driven STDP-like updates (Tavanaei & Maida 2019).
* `stbp`: spatio-temporal backprop with a rectangular surrogate (Wu et al. 2018).
* `encoders`, `data`: Gaussian receptive fields, Poisson trains, leak-free data splits.

Submodules are imported on use (``from n3ml.learn import stdp``), so importing this
package costs nothing.
"""

__all__ = ["spikeprop", "stdp", "softlif", "bpstdp", "stbp", "encoders", "data"]
