#!/usr/bin/env python3
"""Re-batches a static-batch YOLOv5 ONNX export: input/output batch dims and the leading 1 of every
Reshape target shape become N (as torch_peer.py does when it runs a static export at another
batch). Used on the device machine to build batch-N engines from the static exports.

  python3 rebatch_onnx.py yolov5s.onnx yolov5s-b32.onnx 32
"""
import sys

import numpy as np
import onnx
from onnx import numpy_helper


def main():
    src, dst, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    m = onnx.load(src)
    g = m.graph
    for v in list(g.input) + list(g.output):
        dims = v.type.tensor_type.shape.dim
        if len(dims) > 0:
            dims[0].ClearField('dim_param')
            dims[0].dim_value = n
    del g.value_info[:]
    inits = {t.name: t for t in g.initializer}
    consts = {nd.output[0]: nd for nd in g.node if nd.op_type == 'Constant'}
    done = set()
    for nd in g.node:
        if nd.op_type != 'Reshape' or len(nd.input) < 2 or nd.input[1] in done:
            continue
        name = nd.input[1]
        if name in inits:
            arr = numpy_helper.to_array(inits[name]).copy()
            if arr.size and arr[0] == 1:
                arr[0] = n
                inits[name].CopyFrom(numpy_helper.from_array(arr.astype(np.int64), name))
        elif name in consts:
            for a in consts[name].attribute:
                if a.name == 'value':
                    arr = numpy_helper.to_array(a.t).copy()
                    if arr.size and arr[0] == 1:
                        arr[0] = n
                        a.t.CopyFrom(numpy_helper.from_array(arr.astype(np.int64), a.t.name))
        done.add(name)
    onnx.save(m, dst)


if __name__ == '__main__':
    main()
