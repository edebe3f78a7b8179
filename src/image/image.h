// qyolo — 8-bit RGB images: JPEG (libjpeg-turbo) and PNG (libpng) decode/encode.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "qyolo/image.h"
#include "qyolo/status.h"

namespace qyolo {





// Same decoders on an in-memory file; `name` only labels error messages.
Result<Image> decode_image(const uint8_t* data, size_t size, const std::string& name);

// {width, height} from the file header only (JPEG SOF segment or PNG IHDR), without decoding.
Result<std::pair<int, int>> read_image_size(const std::string& path);



}  // namespace qyolo
