#!/usr/bin/env python3
"""Independent reference values for hdm-runtime's optimizers (tests/optimizers.rs).

Regenerate (from the hdm-runtime folder, Python 3.11, standard library only):

    python3 tests/reference/optimizers.py > tests/reference/expected.rs

Where the numbers come from: every update rule below is written from its published description,
not from the Rust code:
- SGD, Adagrad, RMSprop, Adam, AdamW: the "Algorithm" boxes of the torch.optim documentation
  (torch 2.x). For AMSGrad we follow torch's code and its current docs: the running maximum is
  taken of the *uncorrected* second moment v_t, then divided by the bias correction 1 - beta2^t
  (older docs wrote the maximum of the corrected v_t, which torch never computed).
- HDM: the first explicit method of Maddison, Paulin, Teh, O'Donoghue and Doucet (2018),
  "Hamiltonian Descent Methods", arXiv:1809.05042: p <- d p - e d grad f(x),
  x <- x + e grad k(p), d = 1 / (1 + gamma e), with the kinetic energies and norms of hdm's
  Hdm (the norm over all parameters is the paper's; per tensor is the reference Chainer code's).
- A cross-check against the real torch was tried: the torch wheel on PyPI (2.15.0, 539 MB) is the
  CUDA build and does not import without the nvidia-* wheels (several GB), so no number here comes
  from torch itself.

The problem: two parameter tensors of lengths 3 and 5; the gradient at step t (from 1) is that of
a separable quadratic plus a fixed step-dependent offset,
    g[k][i] = CURVATURE[k][i] * (x[k][i] - CENTER[k][i]) + NOISE[t-1][k][i],
computed in the same order in Rust, so both sides see bit-identical gradients for identical x.
Each case runs STEPS steps with the learning rate multiplied by the case's scales[t-1], as a
torch learning-rate scheduler does (for HDM the step size e is scaled, and d with it).
"""

import math
import sys

STEPS = 8
X0 = [[0.5, -1.25, 2.0], [1.5, -0.75, 0.25, -2.0, 1.0]]
CURVATURE = [[1.0, 0.5, 2.0], [0.25, 3.0, 1.5, 0.75, 1.25]]
CENTER = [[0.25, 0.5, -1.0], [-0.5, 0.125, 1.0, 0.75, -0.25]]
# Offsets in multiples of 1/8, changing sign and size from step to step.
NOISE = [
    [[0.125 * (((5 * t + 3 * k + 7 * i) % 9) - 4) for i in range(len(X0[k]))] for k in range(2)]
    for t in range(STEPS)
]
ONES = [1.0] * STEPS


def gradient(t, xs):
    return [
        [CURVATURE[k][i] * (x[i] - CENTER[k][i]) + NOISE[t - 1][k][i] for i in range(len(x))]
        for k, x in enumerate(xs)
    ]


def zeros_like(xs):
    return [[0.0] * len(x) for x in xs]


# ---------------------------------------------------------------------------------------------
# torch.optim.SGD: g <- g + lambda x; b <- g (t = 1) or mu b + (1 - tau) g; g <- g + mu b
# (nesterov) or b; x <- x - lr g.
def sgd(h, scales):
    lr, mu, tau, nesterov, wd = h["lr"], h["momentum"], h["dampening"], h["nesterov"], h["weight_decay"]
    xs = [list(x) for x in X0]
    bufs = zeros_like(xs)
    for t in range(1, STEPS + 1):
        gs = gradient(t, xs)
        gamma = lr * scales[t - 1]
        for x, g, b in zip(xs, gs, bufs):
            for i in range(len(x)):
                gt = g[i]
                if wd != 0:
                    gt = gt + wd * x[i]
                if mu != 0:
                    if t > 1:
                        b[i] = mu * b[i] + (1 - tau) * gt
                    else:
                        b[i] = gt
                    if nesterov:
                        gt = gt + mu * b[i]
                    else:
                        gt = b[i]
                x[i] = x[i] - gamma * gt
    return xs


# torch.optim.Adagrad: clr <- lr / (1 + (t - 1) eta); g <- g + lambda x; state_sum += g^2;
# x <- x - clr g / (sqrt(state_sum) + eps).
def adagrad(h, scales):
    lr, eta, wd, init, eps = h["lr"], h["lr_decay"], h["weight_decay"], h["initial_accumulator_value"], h["eps"]
    xs = [list(x) for x in X0]
    sums = [[init] * len(x) for x in xs]
    for t in range(1, STEPS + 1):
        gs = gradient(t, xs)
        clr = lr * scales[t - 1] / (1 + (t - 1) * eta)
        for x, g, s in zip(xs, gs, sums):
            for i in range(len(x)):
                gt = g[i]
                if wd != 0:
                    gt = gt + wd * x[i]
                s[i] = s[i] + gt**2
                x[i] = x[i] - clr * gt / (math.sqrt(s[i]) + eps)
    return xs


# torch.optim.RMSprop: g <- g + lambda x; v <- alpha v + (1 - alpha) g^2; v~ <- v;
# centered: g_ave <- alpha g_ave + (1 - alpha) g, v~ <- v~ - g_ave^2;
# mu > 0: b <- mu b + g / (sqrt(v~) + eps), x <- x - lr b; else x <- x - lr g / (sqrt(v~) + eps).
def rmsprop(h, scales):
    lr, alpha, eps, wd, mu, centered = (
        h["lr"], h["alpha"], h["eps"], h["weight_decay"], h["momentum"], h["centered"])
    xs = [list(x) for x in X0]
    vs, bufs, aves = zeros_like(xs), zeros_like(xs), zeros_like(xs)
    for t in range(1, STEPS + 1):
        gs = gradient(t, xs)
        gamma = lr * scales[t - 1]
        for x, g, v, b, ave in zip(xs, gs, vs, bufs, aves):
            for i in range(len(x)):
                gt = g[i]
                if wd != 0:
                    gt = gt + wd * x[i]
                v[i] = alpha * v[i] + (1 - alpha) * gt**2
                vt = v[i]
                if centered:
                    ave[i] = ave[i] * alpha + (1 - alpha) * gt
                    vt = vt - ave[i] ** 2
                if mu > 0:
                    b[i] = mu * b[i] + gt / (math.sqrt(vt) + eps)
                    x[i] = x[i] - gamma * b[i]
                else:
                    x[i] = x[i] - gamma * gt / (math.sqrt(vt) + eps)
    return xs


# torch.optim.Adam (decoupled=False) and torch.optim.AdamW (decoupled=True):
# AdamW: x <- x - lr lambda x; Adam: g <- g + lambda x;
# m <- b1 m + (1 - b1) g; v <- b2 v + (1 - b2) g^2; m^ <- m / (1 - b1^t);
# amsgrad: v_max <- max(v_max, v), v^ <- v_max / (1 - b2^t); else v^ <- v / (1 - b2^t);
# x <- x - lr m^ / (sqrt(v^) + eps).
def adam(h, scales, decoupled, report=None):
    lr, b1, b2, eps, wd, amsgrad = h["lr"], h["beta1"], h["beta2"], h["eps"], h["weight_decay"], h["amsgrad"]
    xs = [list(x) for x in X0]
    ms, vs, vmaxs = zeros_like(xs), zeros_like(xs), zeros_like(xs)
    max_was_active = False
    for t in range(1, STEPS + 1):
        gs = gradient(t, xs)
        gamma = lr * scales[t - 1]
        for x, g, m, v, vmax in zip(xs, gs, ms, vs, vmaxs):
            for i in range(len(x)):
                gt = g[i]
                if decoupled:
                    x[i] = x[i] - gamma * wd * x[i]
                elif wd != 0:
                    gt = gt + wd * x[i]
                m[i] = b1 * m[i] + (1 - b1) * gt
                v[i] = b2 * v[i] + (1 - b2) * gt**2
                m_hat = m[i] / (1 - b1**t)
                if amsgrad:
                    if vmax[i] > v[i]:
                        max_was_active = True
                    vmax[i] = max(vmax[i], v[i])
                    v_hat = vmax[i] / (1 - b2**t)
                else:
                    v_hat = v[i] / (1 - b2**t)
                x[i] = x[i] - gamma * m_hat / (math.sqrt(v_hat) + eps)
    if amsgrad:
        assert max_was_active, "the AMSGrad case never used its maximum: pick other betas"
    return xs


# ---------------------------------------------------------------------------------------------
# HDM, first explicit method: d = 1 / (1 + gamma e); p <- d p - e d g; x <- x + e grad k(p).
RELATIVISTIC, QUADRATIC, POWER = 0.0, 1.0, 2.0
GLOBAL, PER_TENSOR, PER_ELEMENT = 0.0, 1.0, 2.0


def grad_kinetic(p, kinetic, a):
    """grad k of a vector p (a list) under the Euclidean norm of that vector."""
    norm = math.sqrt(sum(q * q for q in p))
    if kinetic == RELATIVISTIC:  # k = sqrt(|p|^2 + 1) - 1
        return [q / math.sqrt(norm**2 + 1) for q in p]
    if kinetic == QUADRATIC:  # k = |p|^2 / 2
        return list(p)
    assert kinetic == POWER  # k = |p|^a / a, grad k(0) = 0
    if norm == 0:
        return [0.0] * len(p)
    return [norm ** (a - 2) * q for q in p]


def hdm(h, scales):
    e0, gamma, kinetic, norm = h["lr"], h["gamma"], h["kinetic"], h["norm"]
    a = h.get("power")
    xs = [list(x) for x in X0]
    ps = zeros_like(xs)
    for t in range(1, STEPS + 1):
        gs = gradient(t, xs)
        e = e0 * scales[t - 1]
        d = 1 / (1 + gamma * e)
        for p, g in zip(ps, gs):
            for i in range(len(p)):
                p[i] = d * p[i] - e * d * g[i]
        if norm == GLOBAL:
            flat = [q for p in ps for q in p]
            flat_k = grad_kinetic(flat, kinetic, a)
            ks = [flat_k[:3], flat_k[3:]]
        elif norm == PER_TENSOR:
            ks = [grad_kinetic(p, kinetic, a) for p in ps]
        else:
            ks = [[grad_kinetic([q], kinetic, a)[0] for q in p] for p in ps]
        for x, k in zip(xs, ks):
            for i in range(len(x)):
                x[i] = x[i] + e * k[i]
    return xs


# ---------------------------------------------------------------------------------------------
# torch's defaults (hdm's names; booleans as 0/1), and HDM's (the paper's MNIST settings).
DEFAULTS = {
    "sgd": dict(lr=1e-3, momentum=0.0, dampening=0.0, nesterov=0.0, weight_decay=0.0),
    "adagrad": dict(lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10),
    "rmsprop": dict(lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=0.0),
    "adam": dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, amsgrad=0.0),
    "adamw": dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=1e-2, amsgrad=0.0),
    "hdm": dict(lr=1.0, gamma=2 / 3, kinetic=RELATIVISTIC, norm=GLOBAL),
}
RUN = {
    "sgd": sgd,
    "adagrad": adagrad,
    "rmsprop": rmsprop,
    "adam": lambda h, s: adam(h, s, decoupled=False),
    "adamw": lambda h, s: adam(h, s, decoupled=True),
    "hdm": hdm,
}
SCHEDULE = [1.0, 0.5, 0.25, 1.0, 0.75, 0.5, 2.0, 1.0]

# (name, optimizer, hyperparameters over the defaults, scales, a case it must differ from)
CASES = [
    ("sgd", "sgd", dict(lr=0.1), ONES, None),
    ("sgd_momentum", "sgd", dict(lr=0.1, momentum=0.9), ONES, "sgd"),
    ("sgd_dampening", "sgd", dict(lr=0.1, momentum=0.9, dampening=0.5), ONES, "sgd_momentum"),
    ("sgd_nesterov", "sgd", dict(lr=0.1, momentum=0.9, nesterov=1.0), ONES, "sgd_momentum"),
    ("sgd_weight_decay", "sgd", dict(lr=0.1, weight_decay=0.1), ONES, "sgd"),
    ("sgd_nesterov_weight_decay", "sgd", dict(lr=0.1, momentum=0.8, nesterov=1.0, weight_decay=0.05), ONES,
     "sgd_nesterov"),
    ("sgd_schedule", "sgd", dict(lr=0.1, momentum=0.9), SCHEDULE, "sgd_momentum"),
    ("adagrad", "adagrad", dict(lr=0.1), ONES, None),
    ("adagrad_lr_decay", "adagrad", dict(lr=0.1, lr_decay=0.1), ONES, "adagrad"),
    ("adagrad_weight_decay", "adagrad", dict(lr=0.1, weight_decay=0.1), ONES, "adagrad"),
    ("adagrad_accumulator_eps", "adagrad", dict(lr=0.1, initial_accumulator_value=0.5, eps=1e-3), ONES,
     "adagrad"),
    ("adagrad_all", "adagrad", dict(lr=0.1, lr_decay=0.05, weight_decay=0.02, initial_accumulator_value=0.1),
     SCHEDULE, "adagrad"),
    ("rmsprop", "rmsprop", dict(lr=0.01), ONES, None),
    ("rmsprop_centered", "rmsprop", dict(lr=0.01, centered=1.0), ONES, "rmsprop"),
    ("rmsprop_momentum", "rmsprop", dict(lr=0.01, momentum=0.9), ONES, "rmsprop"),
    ("rmsprop_centered_momentum", "rmsprop", dict(lr=0.01, centered=1.0, momentum=0.9), ONES,
     "rmsprop_centered"),
    ("rmsprop_weight_decay", "rmsprop", dict(lr=0.01, weight_decay=0.1), ONES, "rmsprop"),
    ("rmsprop_alpha_eps", "rmsprop", dict(lr=0.01, alpha=0.9, eps=1e-3), ONES, "rmsprop"),
    ("rmsprop_schedule", "rmsprop", dict(lr=0.01, centered=1.0, momentum=0.5), SCHEDULE, "rmsprop_centered"),
    ("adam", "adam", dict(lr=0.05), ONES, None),
    ("adam_betas_eps", "adam", dict(lr=0.05, beta1=0.8, beta2=0.5, eps=1e-3), ONES, "adam"),
    ("adam_amsgrad", "adam", dict(lr=0.05, beta1=0.8, beta2=0.5, eps=1e-3, amsgrad=1.0), ONES,
     "adam_betas_eps"),
    ("adam_weight_decay", "adam", dict(lr=0.05, weight_decay=0.1), ONES, "adam"),
    ("adam_schedule", "adam", dict(lr=0.05, weight_decay=0.1), SCHEDULE, "adam_weight_decay"),
    ("adamw", "adamw", dict(lr=0.05), ONES, "adam"),
    ("adamw_weight_decay", "adamw", dict(lr=0.05, weight_decay=0.5), ONES, "adam_weight_decay"),
    ("adamw_amsgrad", "adamw", dict(lr=0.05, beta1=0.8, beta2=0.5, eps=1e-3, weight_decay=0.5, amsgrad=1.0),
     ONES, "adam_amsgrad"),
    ("adamw_schedule", "adamw", dict(lr=0.05, weight_decay=0.5), SCHEDULE, "adamw_weight_decay"),
    ("hdm_default", "hdm", dict(), ONES, None),
]
KINETICS = [("relativistic", dict(kinetic=RELATIVISTIC)), ("quadratic", dict(kinetic=QUADRATIC)),
            ("power3", dict(kinetic=POWER, power=3.0)), ("power1_5", dict(kinetic=POWER, power=1.5))]
NORMS = [("global", GLOBAL), ("per_tensor", PER_TENSOR), ("per_element", PER_ELEMENT)]
for kname, kh in KINETICS:
    for nname, norm in NORMS:
        CASES.append((f"hdm_{kname}_{nname}", "hdm", dict(lr=0.5, norm=norm, **kh), ONES, None))
CASES += [
    ("hdm_gamma", "hdm", dict(lr=0.5, gamma=1.5, norm=PER_TENSOR), ONES, "hdm_relativistic_per_tensor"),
    ("hdm_schedule_per_tensor", "hdm", dict(lr=0.5, norm=PER_TENSOR), SCHEDULE, "hdm_relativistic_per_tensor"),
    ("hdm_schedule_global", "hdm", dict(lr=0.5, kinetic=POWER, power=3.0), SCHEDULE, "hdm_power3_global"),
]


def max_rel_diff(a, b):
    return max(abs(p - q) / max(abs(q), 1e-3) for x, y in zip(a, b) for p, q in zip(x, y))


def rust_f64(v):
    assert math.isfinite(v)
    s = repr(float(v))
    return s


def rust_slices(xs):
    return "[" + ", ".join("&[" + ", ".join(rust_f64(v) for v in x) + "]" for x in xs) + "]"


def main():
    results = {}
    out = []
    for name, opt, over, scales, differs in CASES:
        h = dict(DEFAULTS[opt])
        assert set(over) <= set(h) | {"power"}, (name, over)
        h.update(over)
        xs = RUN[opt](h, scales)
        results[name] = xs
        if differs is not None:
            # The option this case adds must change the trajectory, or the test could not fail.
            assert max_rel_diff(xs, results[differs]) > 1e-6, (name, differs)
        out.append((name, opt, h, scales, xs))
    # The quadratic kinetic energy does not use the norm: the three norms agree.
    for kname, _ in KINETICS:
        finals = [results[f"hdm_{kname}_{n}"] for n, _ in NORMS]
        if kname == "quadratic":
            assert all(max_rel_diff(f, finals[0]) < 1e-14 for f in finals)
        else:
            assert all(max_rel_diff(f, g) > 1e-6 for f in finals for g in finals if f is not g), kname
    # Every case must stay in a range where a relative tolerance means something.
    smallest = min(abs(v) for _, _, _, _, xs in out for x in xs for v in x)
    assert smallest > 1e-3, smallest

    w = sys.stdout.write
    w("// @generated by tests/reference/optimizers.py: do not edit. To regenerate, from hdm-runtime/:\n")
    w("//     python3 tests/reference/optimizers.py > tests/reference/expected.rs\n")
    w("// The values come from an independent Python implementation of the published update rules\n")
    w("// (torch.optim's documented algorithms, the HDM paper); see that script.\n\n")
    w(f"const STEPS: u64 = {STEPS};\n")
    w(f"const X0: [&[f64]; 2] = {rust_slices(X0)};\n")
    w(f"const CURVATURE: [&[f64]; 2] = {rust_slices(CURVATURE)};\n")
    w(f"const CENTER: [&[f64]; 2] = {rust_slices(CENTER)};\n")
    w(f"const NOISE: [[&[f64]; 2]; {STEPS}] = [\n")
    for t in range(STEPS):
        w(f"    {rust_slices(NOISE[t])},\n")
    w("];\n\n")
    w("/// torch's default hyperparameters (HDM: the paper's MNIST settings).\n")
    w("const DEFAULTS: &[(&str, &[(&str, f64)])] = &[\n")
    for opt, h in DEFAULTS.items():
        w(f'    ("{opt}", &[' + ", ".join(f'("{k}", {rust_f64(v)})' for k, v in h.items()) + "]),\n")
    w("];\n\n")
    w("const CASES: &[Case] = &[\n")
    for name, opt, h, scales, xs in out:
        w("    Case {\n")
        w(f'        name: "{name}",\n')
        w(f'        optimizer: "{opt}",\n')
        w("        hyperparameters: &[" + ", ".join(f'("{k}", {rust_f64(v)})' for k, v in h.items()) + "],\n")
        w("        scales: [" + ", ".join(rust_f64(s) for s in scales) + "],\n")
        w(f"        expected: {rust_slices(xs)},\n")
        w("    },\n")
    w("];\n")


if __name__ == "__main__":
    main()
