// Load-time quantization of linear weights (`--quant`): each row is converted to f32 (dequantize_rows, which
// applies FP8 block scales) and quantized with GGML's reference round-to-nearest quantizers (kernels/quant.h).
// Rows are spread over the hardware threads; memory grows by the quantized copy only (one f32 row per thread).
#include "model/quantize_load.h"

#include <set>

#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/linear.h"
#include "kernels/quant.h"

namespace dm {

namespace {

bool is_float(DType t) { return t == DType::F32 || t == DType::BF16 || t == DType::F16 || t == DType::F8_E4M3; }

// Quantized copy of `w` ([rows, cols] in any float dtype) as Q8_0 or Q4_0.
Buffer quantize_weight(const Weight& w, DType to, ThreadPool& pool) {
  const size_t row_bytes = dtype_bytes(to, w.cols);
  Buffer out(size_t(w.rows) * row_bytes);
  auto* dst = static_cast<uint8_t*>(out.data());
  pool.parallel_for(w.rows, [&](int64_t r0, int64_t r1) {
    std::vector<float> row(static_cast<size_t>(w.cols));
    for (int64_t r = r0; r < r1; ++r) {
      dequantize_rows(w, r, r + 1, row.data());
      uint8_t* d = dst + size_t(r) * row_bytes;
      if (to == DType::Q8_0)
        quantize_row_q8_0(row.data(), reinterpret_cast<BlockQ8_0*>(d), w.cols);
      else
        quantize_row_q4_0(row.data(), reinterpret_cast<BlockQ4_0*>(d), w.cols);
    }
  });
  return out;
}

}  // namespace

std::shared_ptr<const WeightStore> quantize_linear_weights(std::shared_ptr<const WeightStore> store,
                                                           const std::vector<TensorSpec>& specs,
                                                           const std::string& quant) {
  if (quant.empty()) return store;
  if (quant != "q8_0" && quant != "q4_0") fail("--quant '", quant, "': expected q8_0 or q4_0");
  const DType to = quant == "q8_0" ? DType::Q8_0 : DType::Q4_0;

  std::set<std::string> targets;  // linear weights stored as floats
  for (const TensorSpec& s : specs) {
    const StoredTensor* t = s.kind == TensorSpec::Kind::Linear ? store->find(s.name) : nullptr;
    if (!t || !is_float(t->view.dtype) || t->view.ndim() != 2) continue;  // missing: the family's check reports it
    if (t->view.dim(1) % kQK != 0) continue;  // no whole blocks: kept as stored (llama.cpp's converter: F16)
    targets.insert(s.name);
  }

  auto out = std::make_shared<WeightStore>();
  for (const auto& f : store->files()) out->keep_file(f);
  ThreadPool pool(0);
  for (const std::string& name : store->names()) {
    const StoredTensor& t = *store->find(name);
    const std::string suffix = "_scale_inv";
    if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0 &&
        targets.count(name.substr(0, name.size() - suffix.size())) &&
        store->find(name.substr(0, name.size() - suffix.size()))->view.dtype == DType::F8_E4M3)
      continue;  // folded into the quantized weight
    if (!targets.count(name)) {
      out->add(name, t);
      continue;
    }
    Weight w{t.view.dtype, t.view.dim(0), t.view.dim(1), t.view.data, nullptr};
    if (w.dtype == DType::F8_E4M3) {
      const TensorView& sv = store->get(name + suffix, {DType::F32}, {(w.rows + 127) / 128, (w.cols + 127) / 128});
      w.scale_inv = sv.f32();
    }
    if (t.view.nbytes != w.bytes())
      fail(t.file, ": tensor '", name, "' holds ", t.view.nbytes, " bytes, expected ", w.bytes());
    out->add_owned(name, t.file, to, t.view.shape, quantize_weight(w, to, pool));
  }
  return out;
}

}  // namespace dm
