// CUDA letterbox: uint8 HWC RGB image in device memory -> float/half NCHW network input, bit-exact
// with the CPU letterbox (src/image/letterbox.cpp: ultralytics letterbox on OpenCV INTER_LINEAR
// fixed-point resize, pad 114, x / 255.f).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "image/letterbox.h"
#include "qyolo/status.h"
#include "qyolo/tensor.h"

namespace qyolo::cuda {

// The geometry letterbox() uses (scale, padding), without touching pixels.
LetterboxInfo letterbox_geometry(int src_w, int src_h, int dst_h, int dst_w);

// src: src_h rows of src_pitch bytes, each src_w RGB pixels. dst: 3 planes of dst_h x dst_w in
// out_dtype (kFloat32 or kFloat16), e.g. one image of a batch input; for kUInt8 the letterboxed
// bytes themselves, dst_h x dst_w x 3 (HWC: the input of a uint8-nhwc engine). Never allocates or
// synchronises. An empty source gives an all-pad image (as the CPU letterbox does).
Status letterbox_to_nchw_gpu(const uint8_t* src, int src_w, int src_h, size_t src_pitch, int dst_h, int dst_w,
                             DataType out_dtype, void* dst, cudaStream_t stream, LetterboxInfo* info = nullptr);

// `count` equally sized sources, src_stride bytes apart (a batch of camera frames), into `count`
// consecutive network inputs in one launch; `info` (if given) gets the one geometry they share.
Status letterbox_batch_gpu(const uint8_t* src, int src_w, int src_h, size_t src_pitch, size_t src_stride,
                           int count, int dst_h, int dst_w, DataType out_dtype, void* dst,
                           cudaStream_t stream, LetterboxInfo* info = nullptr);

}  // namespace qyolo::cuda
