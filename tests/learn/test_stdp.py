import math

import numpy as np
import pytest
import torch

from n3ml.errors import N3mlError
from n3ml.ir.interp import run as ir_run
from n3ml.learn.data import load_split
from n3ml.learn.stdp import DiehlCook, DiehlCookConfig, TraceSTDP


def _pair(pre_t, post_t, steps=12):
    rule = TraceSTDP(eta_pre=0.1, eta_post=0.1, tau_pre=5.0, tau_post=5.0, w_max=1.0, mu=1.0)
    w = torch.full((1, 1), 0.5, dtype=torch.float64)
    st = rule.init_state(1, 1, 1, w)
    for t in range(steps):
        pre = torch.tensor([[1.0 if t == pre_t else 0.0]], dtype=torch.float64)
        post = torch.tensor([[1.0 if t == post_t else 0.0]], dtype=torch.float64)
        w, st = rule.step(w, pre, post, st)
    return float(w)


def test_pre_before_post_potentiates_post_before_pre_depresses():
    assert _pair(2, 5) > 0.5  # causal pairing: LTP
    assert _pair(5, 2) < 0.5  # anti-causal pairing: LTD
    # hand value: post 3 steps after pre sees x_pre = exp(-3/5); dw = eta * x_pre * (w_max - w)
    assert _pair(2, 5) == pytest.approx(0.5 + 0.1 * math.exp(-3 / 5) * 0.5)
    assert _pair(5, 2) == pytest.approx(0.5 - 0.1 * math.exp(-3 / 5) * 0.5)
    # the effect fades with the distance between the spikes
    assert _pair(2, 4) > _pair(2, 8) > 0.5
    # lone spikes change nothing
    assert _pair(3, 99) == 0.5 and _pair(99, 3) == 0.5


def test_weights_stay_within_bounds():
    rule = TraceSTDP(eta_pre=5.0, eta_post=5.0, w_max=1.0)
    w = torch.tensor([[0.9, 0.1]])
    st = rule.init_state(1, 1, 2, w)
    ones = torch.ones(1, 1), torch.ones(1, 2)
    for _ in range(5):
        w, st = rule.step(w, *ones, st)
    assert (w >= 0).all() and (w <= 1).all()


def _small_config(**kw):
    return DiehlCookConfig(n_exc=30, steps=60, **kw)


def test_unsupervised_learning_on_digits_beats_chance_by_far():
    d = load_split("digits", test_size=0.25, seed=0)
    xtr, ytr = torch.tensor(d.x_train[:200]), torch.tensor(d.y_train[:200])
    xte, yte = torch.tensor(d.x_test[:200]), torch.tensor(d.y_test[:200])
    m = DiehlCook(64, _small_config(), seed=0)
    w0 = m.weight.clone()
    m.train_epoch(xtr)
    assert torch.allclose(m.weight.sum(dim=0), torch.full((30,), m.cfg.w_sum), rtol=1e-4)  # normalised
    assert (m.theta > 0).sum() >= 10  # thresholds adapted in many neurons
    # receptive fields moved toward the digits: weights on pixels that are never on shrink
    dark = xtr.max(dim=0).values == 0
    assert m.weight[dark].sum() < 0.5 * w0[dark].sum()
    m.assign_labels(m.counts(xtr), ytr, 10)
    acc = float((m.classify(m.counts(xte)) == yte).float().mean())
    assert acc > 0.5  # chance is 0.1


@pytest.mark.parametrize("poisson_input", [False, True])
def test_ir_graph_reproduces_the_trained_layer(poisson_input):
    d = load_split("digits", test_size=0.25, seed=0)
    m = DiehlCook(64, _small_config(), seed=1)
    m.train_epoch(torch.tensor(d.x_train[:40]))
    assert (m.theta > 0).any()
    x = d.x_test[:10].astype(np.float64)
    T = m.cfg.steps
    u = np.random.default_rng(3).random((T, len(x), 64))
    spikes = (u < np.clip(m.cfg.rate * x, 0, 1)).astype(np.float64)
    ours = m.run(torch.tensor(spikes)).numpy()
    g = m.to_graph(seed=3, poisson_input=poisson_input)
    ir = ir_run(g, {"x": np.repeat(x[None], T, axis=0) if poisson_input else spikes}).outputs["spikes"]
    assert ours.sum() > 20 and np.array_equal(ours, ir)


def test_errors():
    with pytest.raises(N3mlError, match="one sample at a time"):
        DiehlCook(4, _small_config()).run(torch.zeros(3, 2, 4), learn=True)
    with pytest.raises(N3mlError, match="assign_labels"):
        DiehlCook(4, _small_config()).classify(torch.zeros(1, 30))


def test_sparse_learning_path_equals_the_dense_trace_rule():
    # the learning run touches only active rows/columns; the dense TraceSTDP.step on the
    # full matrices is the definition it must reproduce (weights, thresholds and spikes)
    cfg = DiehlCookConfig(n_exc=12, steps=80, rate=0.3, theta0=2.0, w_sum=3.0, eta_pre=0.02, eta_post=0.05,
                          theta_plus=0.3, w_inh=3.0)
    m = DiehlCook(20, cfg, seed=4, dtype=torch.float64)
    gen = torch.Generator().manual_seed(5)
    spikes = (torch.rand((cfg.steps, 1, 20), generator=gen, dtype=torch.float64) < 0.3).to(torch.float64)
    w, theta = m.weight.clone(), m.theta.clone()
    # reference: the dense loop
    rule = m.rule
    st = rule.init_state(1, 20, cfg.n_exc, spikes)
    v = torch.zeros(1, cfg.n_exc, dtype=torch.float64)
    cnt = torch.zeros(1, cfg.n_exc, dtype=torch.long)
    s = torch.zeros_like(v)
    ref = []
    for t in range(cfg.steps):
        x = spikes[t]
        cand = m.decay * v + x @ w - cfg.w_inh * (s.sum(dim=1, keepdim=True) - s)
        refr = cnt > 0
        v = torch.where(refr, v, cand)
        s = ((v > cfg.theta0 + theta) & ~refr).to(v.dtype)
        v = torch.where(s > 0, torch.zeros_like(v), v)
        cnt = torch.where(s > 0, torch.full_like(cnt, cfg.refractory), (cnt - 1).clamp(min=0))
        ref.append(s)
        w, st = rule.step(w, x, s, st)
        theta = theta * math.exp(-1 / cfg.tau_theta) + cfg.theta_plus * s[0]
    out = m.run(spikes, learn=True)
    assert out.sum() > 10
    assert torch.equal(out, torch.stack(ref))
    torch.testing.assert_close(m.weight, w, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(m.theta, theta, rtol=1e-12, atol=1e-12)


def test_training_records_the_responses_used_for_labelling():
    d = load_split("digits", test_size=0.25, seed=0)
    xtr = torch.tensor(d.x_train[:30])
    m = DiehlCook(64, _small_config(), seed=0)
    m.train_epoch(xtr)
    assert m.train_counts.shape == (30, 30)
    assert (m.train_counts.sum(dim=1) >= m.cfg.min_spikes).float().mean() > 0.8
