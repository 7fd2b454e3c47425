"""Where a compiled TensorFlow function's time goes, by kind of op: TensorFlow's profiler, read back and summed.

`op_seconds(run)` runs `run()` under `tf.profiler.experimental`, reads the trace it writes (an XSpace protobuf) and
sums the duration of every op the executor ran, by op type; `by_kind` folds the op types into a few kinds (matrix
products, cross-entropy, optimizer update, ...). Op time is summed over the executor's threads: on 2 cores with
independent ops running side by side it can exceed the wall time, so the kinds are compared as shares of op time.
Only plain-graph functions are seen op by op; XLA-compiled functions (tfllm's fused training kernels, or a whole
step under XLA) count as one kind.

    seconds = op_seconds(lambda: model.fit(batches, steps_per_epoch=3, verbose=0))  # {op type or scope: s}
    kinds = by_kind(seconds)                                                         # {kind: s}
"""

import collections
import glob
import os
import tempfile

import tensorflow as tf
from tensorflow.tsl.profiler.protobuf import xplane_pb2

MATRIX_PRODUCTS = {"MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3", "Einsum", "_FusedMatMul",
                   "_MklMatMul", "_MklBatchMatMul", "_MklBatchMatMulV2", "_MklFusedMatMul", "_MklNativeFusedMatMul",
                   "_MklFusedBatchMatMulV2", "_MklEinsum"}
CROSS_ENTROPY = {"SparseSoftmaxCrossEntropyWithLogits", "SoftmaxCrossEntropyWithLogits"}
SOFTMAX = {"Softmax", "LogSoftmax", "_MklSoftmax"}
LAYOUT = {"Transpose", "_MklTranspose", "ConjugateTranspose", "ConcatV2", "Concat", "Pack", "Unpack", "Split",
          "SplitV", "Slice", "StridedSlice", "StridedSliceGrad", "Tile", "Pad", "PadV2", "Reshape", "Identity",
          "GatherV2", "ResourceGather", "UnsortedSegmentSum", "TensorScatterAdd", "ScatterNd", "BroadcastTo"}
# An XLA-compiled function's run shows as this executor event, not as an op "scope/op:OpType".
XLA_RUN_EVENT, XLA_CLUSTER = "CpuExecutable::ExecuteAsyncOnStream", "xla:XlaCluster"
KINDS = ("matrix products", "cross-entropy", "softmax", "optimizer update", "gathers, scatters and layout",
         "element-wise and reductions", "XLA-compiled kernels")


def op_seconds(run, logdir=None):
    """`{op name: seconds}` summed over every op event of the executor's threads while `run()` runs."""
    with tempfile.TemporaryDirectory() as temporary:
        logdir = logdir or temporary
        tf.profiler.experimental.start(logdir)
        try:
            run()
        finally:
            tf.profiler.experimental.stop()
        paths = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
        if not paths:
            raise RuntimeError(f"the profiler wrote no trace under {logdir}")
        space = xplane_pb2.XSpace()
        with open(max(paths, key=os.path.getmtime), "rb") as file:
            space.ParseFromString(file.read())
    seconds = collections.Counter()
    for plane in space.planes:
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                if ":" in name and "::" not in name:  # "scope/op:OpType"; the executor's own events have "::"
                    seconds[name] += event.duration_ps * 1e-12
                elif name == XLA_RUN_EVENT:
                    seconds[XLA_CLUSTER] += event.duration_ps * 1e-12
    return dict(seconds)


def kind_of(name):
    """The kind of an op from its trace name "scope/op:OpType"."""
    if name == XLA_CLUSTER:
        return "XLA-compiled kernels"
    scope, _, op_type = name.rpartition(":")
    if any(part in scope.lower() for part in ("/adam", "/sgd", "/optimizer", "/rmsprop")):
        return "optimizer update"
    if op_type in MATRIX_PRODUCTS:
        return "matrix products"
    if op_type in CROSS_ENTROPY:
        return "cross-entropy"
    if op_type in SOFTMAX:
        return "softmax"
    if op_type in LAYOUT:
        return "gathers, scatters and layout"
    return "element-wise and reductions"


def by_kind(seconds):
    """`{kind: seconds}` for every kind of `KINDS` (zero where none ran).

    >>> by_kind({"a/MatMul:MatMul": 2.0, "adamw/Mul:Mul": 1.0, "b/Add:AddV2": 0.5})["matrix products"]
    2.0
    """
    kinds = dict.fromkeys(KINDS, 0.0)
    for name, value in seconds.items():
        kinds[kind_of(name)] += value
    return kinds


def top_op_types(seconds, count=12):
    """The `count` op types with the most time, `[(op type, seconds)]`."""
    types = collections.Counter()
    for name, value in seconds.items():
        types[name.rpartition(":")[2]] += value
    return types.most_common(count)
