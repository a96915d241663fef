// `--quant q8_0|q4_0`: quantize a float checkpoint's linear weights at load into private buffers (GGML block
// layouts, kernels/quant.h), for any model family. Embeddings, norms, biases and the router keep their dtype.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "loader/weights.h"
#include "model/model.h"

namespace dm {

// A store with the same tensors as `store` where every Kind::Linear tensor of `specs` stored as F32, BF16, F16 or
// F8_E4M3 (+ its _scale_inv, which is dropped) is replaced by an owned `quant` copy ("q8_0" or "q4_0"); tensors
// already block-quantized, or whose columns are not a multiple of 32 (no whole blocks), are kept as stored.
// quant "" returns `store` itself. The source files stay mapped (other tensors still point into them).
// Throws dm::Error for an unknown quant.
std::shared_ptr<const WeightStore> quantize_linear_weights(std::shared_ptr<const WeightStore> store,
                                                           const std::vector<TensorSpec>& specs,
                                                           const std::string& quant);

}  // namespace dm
