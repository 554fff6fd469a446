"""Conv2D, compiled: the seven loops of a convolution over batch-last (C, H, W, N) arrays.

    out[f, oh, ow, n] = bias[f] + Σ_c Σ_i Σ_j weight[f, c, i, j] · x[c, oh·SH + i, ow + j, n]

With the batch last and a horizontal stride of 1, the two innermost loops (ow, n) are one
contiguous run: output row (f, oh) is OW·N values in a row, and the input pixels that tap
(c, i, j) multiplies are the same number of values in a row of x, starting j·N along it.
So every innermost loop of the direct kernels below runs over a long contiguous run, which
LLVM turns into vector instructions, whatever the batch size. A kernel row of five taps
(every LeNet layer's 5×5 kernels) is summed in one pass over the run (`add_five_taps`),
other widths one pass per tap.

Each kernel's parallel loop runs over what one thread may own alone: output rows in the
forward pass, (output map, input map) pairs for the weight gradient, input maps for the
input gradient, so every sum runs in one thread in a fixed order. Unconnected (output,
input) map pairs (the C3 table of LeCun et al. 1998) are skipped.

Which path runs a layer is chosen by measurement (on a 2-core machine, two threads): the
direct loops run every layer with a horizontal stride of 1 and 5-wide kernels, and other
layers whose column matrix is shallow (C·KH·KW at most DIRECT_MAX_DEPTH), unless the
output is narrower than the kernel (C5: a dense layer in all but name); the others build
the column matrix here (`im2col`), run their products in BLAS over column chunks
(`convolve_chunks` and its two siblings) and scatter the input gradient back with `col2im`.
For small batches, whose output rows are short, the direct loops run each map as one run
instead (`conv_forward_maps` and its siblings, below): the same arithmetic for every output
value, so a prediction's bits do not depend on the batch it came in. The choice between the
direct loops and BLAS depends on the layer and the input's width, never on the batch size or
the thread count.
"""

from __future__ import annotations

import numpy as np

from ...nn.im2col import output_size
from ..conv import BLOCK_BYTES, MIN_SMALL_PRODUCT_COLUMNS, SMALL_PRODUCT
from ..step import Step, check_input
from ..windows import pad_spatial, unpad_spatial
from .jit import inline, kernel, prange, serial_kernel

# The narrowest chunk of a deep layer's column matrix whose product is not cut to OpenBLAS's
# small-matrix kernel: lenet5-wide's second convolution ran its three products in 8.8 ms
# at 512 columns against 12.0 ms at the 163 that a 256 KiB block leaves it, simple-cnn's in
# 20.8 against 23.4 ms at 227 (batch 128, two threads; 1,024 and more were slower again).
MIN_CHUNK_COLUMNS = 512
# The deepest column matrix (C·KH·KW) the direct loops run for kernels other than 5 wide;
# deeper ones multiply with BLAS (simple-cnn's 32 → 64-map 3×3 layer at batch 64: forward
# 10.2 ms in BLAS chunks against 23.5 ms in one-tap passes; its 1 → 32-map layer: 2.7
# against 1.7 ms).
DIRECT_MAX_DEPTH = 32
# Output rows shorter than this many values (OW·N) run as whole maps (`conv_forward_maps`).
WHOLE_MAPS_BELOW = 256


# Each kernel: its parallel loop, and beside it one task's work (why: jit.py). In the forward
# pass and the weight gradient a task works on two output maps at once, which read the same
# input rows: each row is loaded once for both, and these loops are bound by their loads, not
# their arithmetic (measured, lenet5's C3 on two threads, one map a task against two: forward
# 0.43 against 0.29 ms at batch 64 and 1.39 against 1.12 at 256; weight gradient 0.42 against
# 0.27 and 1.37 against 0.83). Each output value's sum is the same, in the same order, either
# way. Two input maps a task in the input gradient measured 0.45 against 0.41 ms at batch 64
# and no faster at 256, and cost a second of first-run compiling: not adopted.
@kernel
def conv_forward(x, weight, bias, connected, stride_h, out):
    """x (C, H, W, N) padded, weight (F, C, KH, KW), bias (F,), connected (F, C) bool
    -> out (F, OH, OW, N); horizontal stride 1."""
    for task in prange((out.shape[0] + 1) // 2 * out.shape[1]):
        conv_rows(x, weight, bias, connected, stride_h, out, np.int64(task))


@serial_kernel
def conv_row(x, weight, bias, connected, stride_h, f, oh, total):
    """total (OW·N,) = output row (f, oh) of conv_forward: one contiguous run, (OW, N)."""
    channels, kh = weight.shape[1], weight.shape[2]
    batch = x.shape[3]
    for k in range(total.shape[0]):
        total[k] = bias[f]
    for c in range(channels):
        if not connected[f, c]:
            continue
        for i in range(kh):
            # the output row's input pixels start at row[j·N]
            add_taps(total, x[c, oh * stride_h + i].reshape(-1), weight[f, c, i], batch)


@serial_kernel
def conv_rows(x, weight, bias, connected, stride_h, out, task):
    """Output rows (f, oh) and (f + 1, oh) of conv_forward, for task = (f / 2, oh): one row
    when map f + 1 does not exist."""
    maps, oh_count = out.shape[0], out.shape[1]
    f, oh = 2 * (task // oh_count), task % oh_count
    if f + 1 == maps:
        conv_row(x, weight, bias, connected, stride_h, f, oh, out[f, oh].reshape(-1))
    else:
        conv_row_pair(x, weight, bias, connected, stride_h, f, oh, out[f, oh].reshape(-1), out[f + 1, oh].reshape(-1))


@serial_kernel
def conv_row_pair(x, weight, bias, connected, stride_h, f, oh, total, other):
    """conv_row for output rows (f, oh) into total and (f + 1, oh) into other: the same sums,
    each input row read once for both."""
    channels, kh = weight.shape[1], weight.shape[2]
    batch = x.shape[3]
    for k in range(total.shape[0]):
        total[k] = bias[f]
        other[k] = bias[f + 1]
    for c in range(channels):
        for i in range(kh):
            row = x[c, oh * stride_h + i].reshape(-1)
            if connected[f, c] and connected[f + 1, c]:
                add_taps_pair(total, other, row, weight[f, c, i], weight[f + 1, c, i], batch)
            elif connected[f, c]:
                add_taps(total, row, weight[f, c, i], batch)
            elif connected[f + 1, c]:
                add_taps(other, row, weight[f + 1, c, i], batch)


@kernel
def conv_weight_grad(x, dout, connected, stride_h, dweight):
    """dweight[f, c, i, j] = Σ_oh Σ_ow Σ_n dout[f, oh, ow, n] · x[c, oh·SH + i, ow + j, n]."""
    for task in prange((dweight.shape[0] + 1) // 2 * dweight.shape[1]):
        conv_weight_grad_pairs(x, dout, connected, stride_h, dweight, np.int64(task))


@serial_kernel
def conv_weight_grad_pairs(x, dout, connected, stride_h, dweight, task):
    """dweight[f, c] and dweight[f + 1, c] (when map f + 1 exists) for task = (f / 2, c) of
    conv_weight_grad: both dot the same rows of x[c]."""
    maps, channels, kh, kw = dweight.shape
    _, oh_count, ow_count, batch = dout.shape
    f, c = 2 * (task // channels), task % channels
    run = ow_count * batch
    first = connected[f, c]
    second = f + 1 < maps and connected[f + 1, c]
    sums = np.zeros((kh, kw))  # float64: each sums up to 10^6 products
    other = np.zeros((kh, kw))
    for oh in range(oh_count):
        grad, grad_other = dout[f, oh].reshape(run), dout[f + second, oh].reshape(run)  # dout[f] when unpaired
        for i in range(kh):
            row = x[c, oh * stride_h + i].reshape(-1)
            if first and second:
                dot_taps_pair(grad, grad_other, row, batch, sums[i], other[i])
            elif first:
                dot_taps(grad, row, batch, sums[i])
            elif second:
                dot_taps(grad_other, row, batch, other[i])
    for i in range(kh):
        for j in range(kw):
            dweight[f, c, i, j] = sums[i, j]
            if f + 1 < maps:
                dweight[f + 1, c, i, j] = other[i, j]


@kernel
def conv_input_grad(dout, flipped, connected, stride_h, dx):
    """dx[c, oh·SH + i, ow + j, n] = Σ weight[f, c, i, j] · dout[f, oh, ow, n], summed over f,
    oh, ow, i, j; dx (C, H, W, N) padded, overwritten; flipped = weight[..., ::-1]. `dout`
    comes with KW − 1 zero columns on each side of every row (`pad_rows`), so each of dx's
    rows is a sum of whole shifted rows of it: no edge cases in the innermost loop."""
    rows = dx.shape[1]
    for task in prange(dx.shape[0] * rows):  # each task owns one row of dx: its adds never collide
        c, r = np.int64(task) // rows, np.int64(task) % rows
        conv_input_grad_row(dout, flipped, connected, stride_h, dx.shape[3], c, r, dx[c, r].reshape(-1))


@serial_kernel
def conv_input_grad_row(dout, flipped, connected, stride_h, batch, c, r, target):
    """target (W·N,) = dx[c, r] of conv_input_grad: every pass adds into this one row, which
    stays in the core's cache, and streams a dout row (a loop over dx's rows inside each output
    map instead moved the whole of dx[c] through the cache once per map: C3's input gradient at
    batch 256 took 1.8-2.3 ms that way, measured)."""
    maps, _, kh, _ = flipped.shape
    oh_count = dout.shape[1]
    for k in range(target.shape[0]):
        target[k] = 0
    for f in range(maps):
        if not connected[f, c]:
            continue
        for i in range(kh):
            if r < i or (r - i) % stride_h != 0 or (r - i) // stride_h >= oh_count:
                continue
            # dx's row gets Σ_j w_j · dout's row shifted right by j pixels: in the padded row,
            # dout[f, oh][(KW − 1 − j)·N + k] for its k-th value, which is add_taps with the
            # taps reversed.
            add_taps(target, dout[f, (r - i) // stride_h], flipped[f, c, i], batch)


# -- whole maps as one run: the direct loops for small batches ------------------------------
# With a batch of 1 to 16, an output row is only OW·N values (C3 of lenet5-1998 at batch 4: 40),
# too short for vector loops to pay for their setup. Flattened, a whole input map x[c] is one
# run, and tap (i, j) of output position k = (oh·W + ow)·N + n reads x[c] at k + (i·W + j)·N:
# one shift of one run for the whole map, as for a row. Computing every k up to OH·W·N, the
# positions ow ≥ OW included (they read pixels across the row's end, and are dropped), costs
# (W − OW)/OW more multiply-adds (C3: 40%) but runs loops OH·W times as long. Same arithmetic
# per output value, in the same order, as the row kernels: only which positions run changes.
# Needs a vertical stride of 1. Serial only: at these batch sizes a parallel region's start
# costs about what it would share (lenet5-1998's C3 at batch 4: 63 µs forward on two threads,
# 75 on one; C1 53 and 43), and a parallel build would add a second or more of compiling to a
# first run for each of the three kernels.
@serial_kernel
def conv_forward_maps(x, weight, bias, connected, out):
    """conv_forward (vertical stride 1), one whole output map at a time."""
    for f in range(out.shape[0]):
        conv_forward_map(x, weight, bias, connected, f, out)


@serial_kernel
def conv_forward_map(x, weight, bias, connected, f, out):
    _, oh_count, ow_count, batch = out.shape
    width = x.shape[2] * batch
    run = (oh_count - 1) * width + ow_count * batch  # up to the last real output value
    wide = np.empty(run, x.dtype)
    for k in range(run):
        wide[k] = bias[f]
    for c in range(weight.shape[1]):
        if not connected[f, c]:
            continue
        plane = x[c].reshape(-1)
        for i in range(weight.shape[2]):
            add_taps(wide, plane[i * width :], weight[f, c, i], batch)
    for oh in range(oh_count):
        row, source = out[f, oh].reshape(-1), wide[oh * width : oh * width + ow_count * batch]
        for k in range(row.shape[0]):
            row[k] = source[k]


@serial_kernel
def conv_weight_grad_maps(x, dout_wide, connected, dweight):
    """conv_weight_grad (vertical stride 1) from dout_wide (`widen`), one (f, c) pair at a time."""
    for task in range(dweight.shape[0] * dweight.shape[1]):
        conv_weight_grad_map_pair(x, dout_wide, connected, dweight, task)


@serial_kernel
def conv_weight_grad_map_pair(x, dout_wide, connected, dweight, task):
    _, channels, kh, kw = dweight.shape
    f, c = task // channels, task % channels
    batch = x.shape[3]
    width = x.shape[2] * batch
    edge = (kw - 1) * batch
    # Up to the last real output value, so that no tap reads past x[c]'s end; zero at every
    # position ow ≥ OW, which therefore adds nothing.
    grad = dout_wide[f, edge : dout_wide.shape[1] - edge]
    sums = np.zeros((kh, kw))
    if connected[f, c]:
        plane = x[c].reshape(-1)
        for i in range(kh):
            dot_taps(grad, plane[i * width :], batch, sums[i])
    for i in range(kh):
        for j in range(kw):
            dweight[f, c, i, j] = sums[i, j]


@serial_kernel
def conv_input_grad_maps(dout_wide, flipped, connected, dx):
    """conv_input_grad (vertical stride 1) from dout_wide (`widen`), one input map at a time."""
    for c in range(dx.shape[0]):
        conv_input_grad_map_whole(dout_wide, flipped, connected, dx, c)


@serial_kernel
def conv_input_grad_map_whole(dout_wide, flipped, connected, dx, c):
    maps, _, kh, kw = flipped.shape
    batch = dx.shape[3]
    width = dx.shape[2] * batch
    run = dout_wide.shape[1] - (kw - 1) * batch  # OH·W·N
    plane = dx[c].reshape(-1)
    for k in range(plane.shape[0]):
        plane[k] = 0
    for f in range(maps):
        if not connected[f, c]:
            continue
        for i in range(kh):
            # dx[c] at i·W·N + k gets Σ_j w_j · dout at k − j·N: with KW − 1 zero columns in
            # front, dout_wide[(KW − 1 − j)·N + k], add_taps with the taps reversed.
            add_taps(plane[i * width : i * width + run], dout_wide[f], flipped[f, c, i], batch)


def widen(dout, width, kw):
    """dout (F, OH, OW, N) -> (F, (KW − 1)·N + OH·W·N): each map as a run of W-wide rows, zero
    at positions ow ≥ OW, after KW − 1 columns of zeros (`conv_input_grad_maps` reads them)."""
    maps, oh_count, ow_count, batch = dout.shape
    edge = (kw - 1) * batch
    wide = np.zeros((maps, edge + oh_count * width * batch), dout.dtype)
    wide[:, edge:].reshape(maps, oh_count, width, batch)[:, :, :ow_count] = dout
    return wide


def flipped(weight):
    """weight (F, C, KH, KW) with each kernel row reversed, contiguous: the taps of the input
    gradient's passes (add_taps reads them in order)."""
    return np.ascontiguousarray(weight[..., ::-1])


def pad_rows(dout, kw):
    """dout (F, OH, OW, N) -> (F, OH, (OW + 2·(KW − 1))·N) with KW − 1 zero columns each side."""
    maps, oh_count, ow_count, batch = dout.shape
    edge = (kw - 1) * batch
    padded = np.zeros((maps, oh_count, ow_count * batch + 2 * edge), dout.dtype)
    padded[:, :, edge : edge + ow_count * batch] = dout.reshape(maps, oh_count, -1)
    return padded


# The innermost loops. Each runs over one contiguous run of (OW, N) values; a kernel row of
# five taps is summed in one pass: five loads and one store per output value, where a pass
# per tap would store five times. Stores, not the arithmetic, bound these loops (measured,
# C3 at batch 64 on two threads: the forward pass 0.57 ms one tap per pass, 0.30 ms five
# at once, against 1.28 ms for the column matrix and BLAS).
FIVE = 5


@inline
def add_tap(total, pixels, weight):
    for k in range(total.shape[0]):
        total[k] += weight * pixels[k]


@inline
def add_five_taps(total, row, taps, batch):
    """total[k] += Σ_j taps[j] · row[j·N + k], j < 5."""
    w0, w1, w2, w3, w4 = taps[0], taps[1], taps[2], taps[3], taps[4]
    run = total.shape[0]
    r0, r1, r2 = row[0:run], row[batch : batch + run], row[2 * batch : 2 * batch + run]
    r3, r4 = row[3 * batch : 3 * batch + run], row[4 * batch : 4 * batch + run]
    for k in range(run):
        total[k] += w0 * r0[k] + w1 * r1[k] + w2 * r2[k] + w3 * r3[k] + w4 * r4[k]


# add_taps and dot_taps are compiled once, as functions of their own, and every direct
# kernel calls them: inlined into each, they took seconds of a first run's compiling.
@serial_kernel
def add_taps(total, row, taps, batch):
    """total[k] += Σ_j taps[j] · row[j·N + k]: add_five_taps for five taps, else a pass per tap."""
    if taps.shape[0] == FIVE:
        add_five_taps(total, row, taps, batch)
    else:
        for j in range(taps.shape[0]):
            add_tap(total, row[j * batch : j * batch + total.shape[0]], taps[j])


@inline
def add_five_taps_pair(total, other, row, taps, other_taps, batch):
    """add_five_taps into two runs at once, each with its own taps, from one read of the row."""
    a0, a1, a2, a3, a4 = taps[0], taps[1], taps[2], taps[3], taps[4]
    b0, b1, b2, b3, b4 = other_taps[0], other_taps[1], other_taps[2], other_taps[3], other_taps[4]
    run = total.shape[0]
    r0, r1, r2 = row[0:run], row[batch : batch + run], row[2 * batch : 2 * batch + run]
    r3, r4 = row[3 * batch : 3 * batch + run], row[4 * batch : 4 * batch + run]
    for k in range(run):
        p0, p1, p2, p3, p4 = r0[k], r1[k], r2[k], r3[k], r4[k]
        total[k] += a0 * p0 + a1 * p1 + a2 * p2 + a3 * p3 + a4 * p4
        other[k] += b0 * p0 + b1 * p1 + b2 * p2 + b3 * p3 + b4 * p4


@inline
def add_taps_pair(total, other, row, taps, other_taps, batch):
    """add_taps(total, row, taps, batch) and add_taps(other, row, other_taps, batch)."""
    if taps.shape[0] == FIVE:
        add_five_taps_pair(total, other, row, taps, other_taps, batch)
    else:
        for j in range(taps.shape[0]):
            pixels = row[j * batch : j * batch + total.shape[0]]
            add_tap(total, pixels, taps[j])
            add_tap(other, pixels, other_taps[j])


@serial_kernel
def dot_taps(grad, row, batch, sums):
    """sums[j] += Σ_k grad[k] · row[j·N + k]: dot_five_taps for five taps, else a dot per tap."""
    if sums.shape[0] == FIVE:
        dot_five_taps(grad, row, batch, sums)
    else:
        for j in range(sums.shape[0]):
            sums[j] += dot(grad, row[j * batch : j * batch + grad.shape[0]])


@inline
def dot(left, right):
    total = left.dtype.type(0)  # not 0.0, which would make a float32 sum float64
    for k in range(left.shape[0]):
        total += left[k] * right[k]
    return total


@inline
def dot_five_taps(grad, row, batch, sums):
    """sums[j] += Σ_k grad[k] · row[j·N + k], j < 5, in one pass over grad."""
    run = grad.shape[0]
    r0, r1, r2 = row[0:run], row[batch : batch + run], row[2 * batch : 2 * batch + run]
    r3, r4 = row[3 * batch : 3 * batch + run], row[4 * batch : 4 * batch + run]
    s0 = s1 = s2 = s3 = s4 = grad.dtype.type(0)  # in the arrays' dtype: a float32 sum vectorises
    for k in range(run):
        g = grad[k]
        s0 += g * r0[k]
        s1 += g * r1[k]
        s2 += g * r2[k]
        s3 += g * r3[k]
        s4 += g * r4[k]
    sums[0] += s0
    sums[1] += s1
    sums[2] += s2
    sums[3] += s3
    sums[4] += s4


@inline
def dot_taps_pair(grad, other_grad, row, batch, sums, other_sums):
    """dot_taps(grad, row, batch, sums) and dot_taps(other_grad, row, batch, other_sums)."""
    if sums.shape[0] != FIVE:
        dot_taps(grad, row, batch, sums)
        dot_taps(other_grad, row, batch, other_sums)
        return
    run = grad.shape[0]
    r0, r1, r2 = row[0:run], row[batch : batch + run], row[2 * batch : 2 * batch + run]
    r3, r4 = row[3 * batch : 3 * batch + run], row[4 * batch : 4 * batch + run]
    s0 = s1 = s2 = s3 = s4 = grad.dtype.type(0)
    t0 = t1 = t2 = t3 = t4 = grad.dtype.type(0)
    for k in range(run):
        p0, p1, p2, p3, p4 = r0[k], r1[k], r2[k], r3[k], r4[k]
        g, h = grad[k], other_grad[k]
        s0 += g * p0
        s1 += g * p1
        s2 += g * p2
        s3 += g * p3
        s4 += g * p4
        t0 += h * p0
        t1 += h * p1
        t2 += h * p2
        t3 += h * p3
        t4 += h * p4
    sums[0] += s0
    sums[1] += s1
    sums[2] += s2
    sums[3] += s3
    sums[4] += s4
    other_sums[0] += t0
    other_sums[1] += t1
    other_sums[2] += t2
    other_sums[3] += t3
    other_sums[4] += t4


@kernel
def channel_sums(x, sums):
    """sums[c] = Σ of x[c] (any shape after the channel axis, contiguous), in one thread each."""
    rows = x.reshape(x.shape[0], -1)
    for c in prange(rows.shape[0]):
        total = 0.0  # float64: a bias gradient sums up to 10^6 values
        for k in range(rows.shape[1]):
            total += rows[c, k]
        sums[c] = total


@serial_kernel
def im2col_columns(x, kh, kw, stride_h, stride_w, start, columns):
    """columns (C·KH·KW, M): columns start … start + M − 1 of the column matrix, whose row
    (c, i, j) holds x[c, oh·SH + i, ow·SW + j, n] for every output position in (OH, OW, N)
    order; one chunk of the chunked products below."""
    channels, _, width, batch = x.shape
    ow_count = (width - kw) // stride_w + 1
    row_length = ow_count * batch
    stop = start + columns.shape[1]
    flat = x.reshape(channels, x.shape[1], width * batch)
    for row in range(channels * kh * kw):
        c, i, j = row // (kh * kw), (row // kw) % kh, row % kw
        target = columns[row]
        position = start
        while position < stop:
            oh = position // row_length
            along = position - oh * row_length  # (ow, n) within the output row
            if stride_w == 1:  # a run of (ow, n) positions is one contiguous run of x's row
                count = min(stop, (oh + 1) * row_length) - position
                first = j * batch + along
                source = flat[c, oh * stride_h + i, first : first + count]
            else:
                ow, first = along // batch, along % batch
                count = min(batch - first, stop - position)
                source = x[c, oh * stride_h + i, ow * stride_w + j, first : first + count]
            # Views, then a loop from 0: Numba cannot prove a computed index ≥ 0, and the
            # negative-index check it would add stops the copy from vectorising.
            destination = target[position - start : position - start + count]
            for k in range(count):
                destination[k] = source[k]
            position += count


@kernel
def col2im(columns, kh, kw, stride_h, stride_w, dx):
    """The adjoint of im2col: columns (C·KH·KW, OH·OW·N) summed onto dx (C, H, W, N),
    overwritten; one thread per input map."""
    channels, _, _, batch = dx.shape
    oh_count = (dx.shape[1] - kh) // stride_h + 1
    ow_count = (dx.shape[2] - kw) // stride_w + 1
    windows = columns.reshape(channels, kh, kw, oh_count, ow_count, batch)
    for c in prange(channels):
        dx[c] = 0
        for i in range(kh):
            for j in range(kw):
                for oh in range(oh_count):
                    for ow in range(ow_count):
                        source = windows[c, i, j, oh, ow]
                        target = dx[c, oh * stride_h + i, ow * stride_w + j]
                        for n in range(batch):
                            target[n] += source[n]


def chunk_columns(depth: int, maps: int, itemsize: int) -> int:
    """Columns of a column matrix (`depth` rows, for `maps` output maps) built and multiplied
    at a time: the NumPy step's cache-sized blocks (`lenet5.fast.conv`), which also keep each
    product within OpenBLAS's small-matrix kernel. It depends on the layer alone, never on
    the thread count, so every chunk's product is the same bits on any number of threads."""
    small_product = SMALL_PRODUCT // (maps * depth)
    if small_product >= MIN_SMALL_PRODUCT_COLUMNS:
        return min(BLOCK_BYTES // (depth * itemsize), small_product)
    return max(MIN_CHUNK_COLUMNS, BLOCK_BYTES // (depth * itemsize))


@serial_kernel
def chunk_count(columns, width):
    return (columns + width - 1) // width


# The chunked products. Each prange iteration owns one chunk of columns: it builds that chunk
# of the column matrix in its own buffer (fresh in its core's cache) and hands the product
# to BLAS (Numba's np.dot calls SciPy's BLAS, on one thread: FastModel._threads). No sum is
# split across chunks except the weight gradient's, whose per-chunk partial products are
# added up afterwards, in chunk order.
@serial_kernel
def copy_columns(chunk, start, out):
    """out[:, start : start + width] = chunk, as loops: a slice assignment's shape checks
    would add seconds to the first compile."""
    for row in range(chunk.shape[0]):
        for k in range(chunk.shape[1]):
            out[row, start + k] = chunk[row, k]


@kernel
def convolve_chunks(x, weight_matrix, kh, kw, stride_h, stride_w, width, out):
    """out (F, OH·OW·N) = weight_matrix (F, C·KH·KW) @ im2col(x), chunk by chunk."""
    columns = out.shape[1]
    for chunk in prange(chunk_count(columns, width)):
        start = chunk * width
        stop = min(columns, start + width)
        block = np.empty((weight_matrix.shape[1], stop - start), dtype=x.dtype)
        im2col_columns(x, kh, kw, stride_h, stride_w, start, block)
        copy_columns(np.dot(weight_matrix, block), start, out)


@kernel
def weight_grad_chunks(x, dout_matrix, kh, kw, stride_h, stride_w, width, partials):
    """partials[k] (F, C·KH·KW) = dout_matrix[:, chunk k] @ im2col(x)[:, chunk k]ᵀ."""
    columns = dout_matrix.shape[1]
    for chunk in prange(partials.shape[0]):
        start = chunk * width
        stop = min(columns, start + width)
        block = np.empty((partials.shape[2], stop - start), dtype=x.dtype)
        im2col_columns(x, kh, kw, stride_h, stride_w, start, block)
        np.dot(np.ascontiguousarray(dout_matrix[:, start:stop]), block.T, partials[chunk])


@kernel
def matmul_chunks(left, right, width, out):
    """out = left @ right, `width` columns of `right` at a time."""
    columns = out.shape[1]
    for chunk in prange(chunk_count(columns, width)):
        start = chunk * width
        stop = min(columns, start + width)
        copy_columns(np.dot(left, np.ascontiguousarray(right[:, start:stop])), start, out)


def convolve(padded, weight_matrix, kernel, stride, out_hw):
    """weight_matrix (F, C·KH·KW) @ im2col(padded) -> (F, OH·OW·N), in chunks over the threads."""
    depth, batch = weight_matrix.shape[1], padded.shape[3]
    out = np.empty((weight_matrix.shape[0], out_hw[0] * out_hw[1] * batch), dtype=padded.dtype)
    width = chunk_columns(depth, weight_matrix.shape[0], padded.itemsize)
    convolve_chunks(out.size * depth, padded, np.ascontiguousarray(weight_matrix), *kernel, *stride, width, out)
    return out


class CompiledConvStep(Step):
    """A `lenet5.nn.Conv2D` on (C, H, W, N) arrays: the direct loops for 5-wide kernels and
    shallow layers; otherwise chunks of the column matrix and BLAS over the threads, and
    col2im for the input gradient (see the module docstring)."""

    def __init__(self, layer) -> None:
        super().__init__(layer)
        depth = layer.in_channels * layer.kernel_size[0] * layer.kernel_size[1]
        self.direct = layer.stride[1] == 1 and (layer.kernel_size[1] == FIVE or depth <= DIRECT_MAX_DEPTH)
        self.connected = (np.ones((layer.out_channels, layer.in_channels), bool) if layer.connections is None
                          else np.ascontiguousarray(layer.connections))

    def prepare(self, x):
        """What a forward pass of x needs: (padded x, masked weight, bias, (OH, OW), whether
        the direct loops run it)."""
        conv = self.layer
        check_input(self, x, 4, f"(N, {conv.in_channels}, H, W)", channels=conv.in_channels)
        padded = np.ascontiguousarray(pad_spatial(x, conv.padding))
        height, width = padded.shape[1:3]
        kh, kw = conv.kernel_size
        if height < kh or width < kw:
            raise ValueError(
                f"{conv!r}: input of {height - 2 * conv.padding[0]}x{width - 2 * conv.padding[1]} "
                f"pixels (padded {height}x{width}) is smaller than the kernel {conv.kernel_size}"
            )
        weight = np.ascontiguousarray(conv.masked(conv.weight.value), dtype=x.dtype)
        bias = (np.zeros(conv.out_channels, x.dtype) if conv.bias is None
                else np.ascontiguousarray(conv.bias.value, dtype=x.dtype))
        oh, ow = output_size(height, kh, conv.stride[0]), output_size(width, kw, conv.stride[1])
        # An output narrower than its kernel (C5 of the LeNet-5s: one pixel) makes the layer
        # a dense one, a product BLAS does best (C5 of classic at batch 64: 0.17 ms forward
        # against 0.43 ms in the direct loops).
        return padded, weight, bias, (oh, ow), self.direct and ow >= kw

    def whole_maps(self, ow: int, batch: int) -> bool:
        """Whether the direct loops run whole maps (`conv_forward_maps`): output rows of fewer
        than WHOLE_MAPS_BELOW values, a vertical stride of 1."""
        return self.layer.stride[0] == 1 and ow * batch < WHOLE_MAPS_BELOW

    def forward(self, x):
        conv = self.layer
        padded, weight, bias, (oh, ow), direct = self.prepare(x)
        channels, _, _, batch = padded.shape
        kh, kw = conv.kernel_size
        maps = direct and self.whole_maps(ow, batch)
        self._cache = (padded, weight, direct, maps)
        if direct:
            out = np.empty((conv.out_channels, oh, ow, batch), dtype=x.dtype)
            if maps:
                conv_forward_maps(padded, weight, bias, self.connected, out)
            else:
                conv_forward(out.size * channels * kh * kw, padded, weight, bias, self.connected, conv.stride[0], out)
            return out
        out = convolve(padded, weight.reshape(conv.out_channels, -1), conv.kernel_size, conv.stride, (oh, ow))
        out += bias[:, None]
        return out.reshape(conv.out_channels, oh, ow, batch)

    def backward(self, dout):
        dout = self._backward_parameters(dout)
        padded, weight, direct, maps = self._cache
        kh, kw = self.layer.kernel_size
        if maps:
            dpadded = np.empty_like(padded)
            conv_input_grad_maps(self._dout_wide, flipped(weight), self.connected, dpadded)
        elif direct:
            dpadded = np.empty_like(padded)
            conv_input_grad(dout.size * weight[0].size, pad_rows(dout, kw), flipped(weight), self.connected,
                            self.layer.stride[0], dpadded)
        else:
            # The column matrix's gradient, then summed back onto the pixels. (Computing dx as
            # the convolution of the padded dout with the flipped kernels instead builds a
            # column matrix 2.6 times as large for C3, and measured twice as slow.)
            left = weight.reshape(weight.shape[0], -1).T
            right = dout.reshape(dout.shape[0], -1)
            dcolumns = self._dcolumns_buffer((left.shape[0], right.shape[1]), dout.dtype)
            matmul_chunks(dcolumns.size * left.shape[1], left, right,
                          chunk_columns(left.shape[0], right.shape[0], dout.itemsize), dcolumns)
            dpadded = np.empty_like(padded)
            col2im(dcolumns.size, dcolumns, kh, kw, *self.layer.stride, dpadded)
        return unpad_spatial(dpadded, self.layer.padding)

    def backward_parameters(self, dout):
        self._backward_parameters(dout)

    def _dcolumns_buffer(self, shape, dtype):
        """The column matrix's gradient, kept from step to step: C3's is 7.7 MB at batch 128,
        and a fresh one each step cost 0.3 ms in page faults (measured)."""
        buffer = getattr(self, "_dcolumns", None)
        if buffer is None or buffer.shape != shape or buffer.dtype != dtype:
            buffer = self._dcolumns = np.empty(shape, dtype=dtype)
        return buffer

    def _backward_parameters(self, dout):
        conv = self.layer
        padded, weight, direct, maps = self._cache
        dout = np.ascontiguousarray(dout)
        if maps:
            dweight = np.empty(weight.shape, dtype=dout.dtype)
            self._dout_wide = widen(dout, padded.shape[2], conv.kernel_size[1])
            conv_weight_grad_maps(padded, self._dout_wide, self.connected, dweight)
        elif direct:
            dweight = np.empty(weight.shape, dtype=dout.dtype)
            conv_weight_grad(dout.size * weight[0].size, padded, dout, self.connected, conv.stride[0], dweight)
        else:
            dweight = self._chunked_weight_grad(padded, dout.reshape(conv.out_channels, -1))
        conv.weight.grad += conv.masked(dweight)
        if conv.bias is not None:
            dbias = np.empty(conv.out_channels, dtype=dout.dtype)
            channel_sums(dout.size, dout, dbias)
            conv.bias.grad += dbias
        return dout

    def _chunked_weight_grad(self, padded, dout_matrix):
        """Σ over chunks of dout[:, chunk] @ columns[:, chunk]ᵀ, each chunk's columns built
        again (cheaper than reading a stored matrix back), the partial products added up in
        chunk order."""
        conv = self.layer
        kh, kw = conv.kernel_size
        depth = conv.in_channels * kh * kw
        width = chunk_columns(depth, conv.out_channels, padded.itemsize)
        partials = np.empty((chunk_count(dout_matrix.shape[1], width), conv.out_channels, depth), padded.dtype)
        weight_grad_chunks(dout_matrix.size * depth, padded, dout_matrix, kh, kw, *conv.stride, width, partials)
        total = partials[0].copy()
        for piece in partials[1:]:
            total += piece
        return total.reshape(conv.weight.value.shape)
