// Detection and NmsOptions are public: include/qyolo/detection.h.
#pragma once

#include "qyolo/detection.h"
