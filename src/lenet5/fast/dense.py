"""Dense and Flatten, fast: batch-last, a dense layer is `weight @ x` with no transposed copies."""

from __future__ import annotations

from .step import Step, check_input


class DenseStep(Step):
    """A `lenet5.nn.Dense` on (F, N) arrays."""

    def forward(self, x):
        dense = self.layer
        check_input(self, x, 2, f"(N, {dense.in_features})", channels=dense.in_features)
        self._x = x
        out = dense.weight.value.astype(x.dtype, copy=False) @ x
        if dense.bias is not None:
            out += dense.bias.value.astype(x.dtype, copy=False)[:, None]
        return out

    def backward(self, dout):
        dense = self.layer
        self.backward_parameters(dout)
        return dense.weight.value.T.astype(dout.dtype, copy=False) @ dout

    def backward_parameters(self, dout):
        dense = self.layer
        dense.weight.grad += dout @ self._x.T
        if dense.bias is not None:
            dense.bias.grad += dout.sum(axis=1)


class FlattenStep(Step):
    """A `lenet5.nn.Flatten`: batch-last (C, H, W, N) flattens to (C·H·W, N) in exactly
    PyTorch's feature order, with no copy."""

    def forward(self, x):
        if x.ndim < 2:
            raise ValueError(f"{self.layer!r}: expected input of shape (N, ...), found {x.shape}")
        self._shape = x.shape
        return x.reshape(-1, x.shape[-1])

    def backward(self, dout):
        return dout.reshape(self._shape)
