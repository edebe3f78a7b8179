// AveragePool shares PoolAttrs with MaxPool (see max_pool.h); count_include_pad is honoured here.
#pragma once

#include "ir/ops/max_pool.h"
