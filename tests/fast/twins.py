"""The comparison every fast-engine test makes: a fast step against the reference layer it
runs, on the same weights, batch, upstream gradient and generator state."""

from __future__ import annotations

import numpy as np

from lenet5.fast.layout import to_batch_first, to_batch_last

from ..nn.torch_twins import max_relative_difference

# The same arithmetic in another memory order: equal up to the order of a sum's terms.
TOLERANCE = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 1e-4}


def run_reference(layer, x, dout):
    """(output, input gradient, parameter gradients, buffers after) of the reference layer."""
    for parameter in layer.parameters():
        parameter.zero_grad()
    out = layer.forward(x)
    dx = layer.backward(dout)
    return out, dx, [p.grad.copy() for p in layer.parameters()], [b.copy() for _, b in layer.named_buffers()]


def run_step(step, x, dout):
    """The same four, from the fast step, on batch-last copies of x and dout."""
    for parameter in step.layer.parameters():
        parameter.zero_grad()
    out = to_batch_first(step.forward(np.ascontiguousarray(to_batch_last(x))))
    dx = to_batch_first(step.backward(np.ascontiguousarray(to_batch_last(dout))))
    return out, dx, [p.grad.copy() for p in step.layer.parameters()], [b.copy() for _, b in step.layer.named_buffers()]


def assert_step_matches_layer(step, layer, x, dtype=np.float64, seed=0):
    """Run both from the same state (buffers and generators put back in between) and compare."""
    layer.to(dtype)
    x = np.asarray(x, dtype)
    generators = [m.rng for m in layer.modules() if isinstance(getattr(m, "rng", None), np.random.Generator)]
    saved_generators = [g.bit_generator.state for g in generators]
    saved_buffers = layer.state_dict()
    out_shape = layer.forward(x).shape
    dout = np.random.default_rng(seed).standard_normal(out_shape).astype(dtype)
    layer.load_state_dict(saved_buffers)
    for generator, state in zip(generators, saved_generators):
        generator.bit_generator.state = state
    expected = run_reference(layer, x, dout)
    layer.load_state_dict(saved_buffers)
    for generator, state in zip(generators, saved_generators):
        generator.bit_generator.state = state
    found = run_step(step, x, dout)
    tolerance = TOLERANCE[np.dtype(dtype)]
    for what, ours, reference in zip(("output", "input gradient"), found[:2], expected[:2]):
        assert max_relative_difference(ours, reference) < tolerance, what
    for name, ours, reference in zip([n for n, _ in layer.named_parameters()], found[2], expected[2]):
        assert max_relative_difference(ours, reference) < tolerance, f"gradient of {name}"
    for name, ours, reference in zip([n for n, _ in layer.named_buffers()], found[3], expected[3]):
        assert max_relative_difference(ours, reference) < tolerance, name
