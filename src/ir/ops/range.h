// Range: start, limit, delta scalars (constants at specialisation time: they set the output size).
#pragma once

#include <cstdint>

#include "ir/graph.h"

namespace qyolo {

// Number of elements of Range(start, limit, delta): max(ceil((limit - start) / delta), 0).
int64_t range_count_int(int64_t start, int64_t limit, int64_t delta);
int64_t range_count_float(double start, double limit, double delta);

}  // namespace qyolo
