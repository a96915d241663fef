// safetensors header parsing with full validation, and a writer.
// Format: https://huggingface.co/docs/safetensors (8-byte LE header size, JSON header, packed data).
#include "loader/safetensors.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <limits>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace dm {

namespace {
constexpr uint64_t kMaxHeader = 100ull << 20;  // 100 MiB: far above any real checkpoint's header
constexpr int kMaxDims = 8;
}  // namespace

DType safetensors_dtype(const std::string& s, const std::string& context) {
  static const std::pair<const char*, DType> table[] = {
      {"F32", DType::F32},   {"F16", DType::F16},   {"BF16", DType::BF16}, {"F8_E4M3", DType::F8_E4M3},
      {"I8", DType::I8},     {"I16", DType::I16},   {"I32", DType::I32},   {"I64", DType::I64},
      {"U8", DType::U8},     {"BOOL", DType::BOOL}, {"F64", DType::F64},
  };
  for (auto& [name, t] : table)
    if (s == name) return t;
  fail(context, ": unsupported dtype '", s, "' (supported: F32, F16, BF16, F8_E4M3, I8-I64, U8, BOOL, F64)");
}

const char* safetensors_dtype_name(DType t) {
  // safetensors spells the plain types as dtype_name() does; block-quantized types have no safetensors form.
  if (dtype_block(t) != 1) fail("dtype ", dtype_name(t), " cannot be stored in safetensors");
  return dtype_name(t).data();
}

SafetensorsHeader parse_safetensors_header(const uint8_t* data, size_t file_size, const std::string& path) {
  if (file_size < 8) fail(path, ": truncated safetensors file (", file_size, " bytes, need at least 8)");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | data[i];
  if (n > kMaxHeader) fail(path, ": safetensors header length ", n, " is implausible (corrupt file?)");
  if (n > file_size - 8) fail(path, ": truncated: header length ", n, " exceeds file size ", file_size);
  SafetensorsHeader h;
  h.data_start = 8 + n;
  const uint64_t data_size = file_size - h.data_start;

  nlohmann::json j = nlohmann::json::parse(data + 8, data + 8 + n, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) fail(path, ": safetensors header is not valid JSON");
  if (!j.is_object()) fail(path, ": safetensors header is not a JSON object");

  for (auto& [name, v] : j.items()) {
    if (name == "__metadata__") continue;
    std::string ctx = path + ": tensor '" + name + "'";
    if (!v.is_object()) fail(ctx, ": entry is not an object");
    auto dt = v.find("dtype");
    auto sh = v.find("shape");
    auto off = v.find("data_offsets");
    if (dt == v.end() || !dt->is_string()) fail(ctx, ": missing or non-string 'dtype'");
    if (sh == v.end() || !sh->is_array()) fail(ctx, ": missing or non-array 'shape'");
    if (off == v.end() || !off->is_array() || off->size() != 2) fail(ctx, ": 'data_offsets' must be [begin, end]");
    SafetensorsEntry e;
    e.name = name;
    e.dtype = safetensors_dtype(dt->get<std::string>(), ctx);
    if (sh->size() > size_t(kMaxDims)) fail(ctx, ": ", sh->size(), " dimensions (max ", kMaxDims, ")");
    uint64_t numel = 1;
    for (auto& d : *sh) {
      if (!d.is_number_unsigned()) fail(ctx, ": shape entries must be non-negative integers");
      uint64_t dim = d.get<uint64_t>();
      if (dim > (uint64_t(1) << 40) || (dim && numel > std::numeric_limits<uint64_t>::max() / 16 / dim))
        fail(ctx, ": shape ", sh->dump(), " is implausibly large");
      numel *= dim;
      e.shape.push_back(int64_t(dim));
    }
    for (auto& o : *off)
      if (!o.is_number_unsigned()) fail(ctx, ": data_offsets must be non-negative integers");
    e.begin = (*off)[0].get<uint64_t>();
    e.end = (*off)[1].get<uint64_t>();
    if (e.end < e.begin) fail(ctx, ": data_offsets end ", e.end, " < begin ", e.begin);
    if (e.end > data_size)
      fail(ctx, ": data [", e.begin, ", ", e.end, ") lies past the end of the file (data section is ", data_size,
           " bytes; truncated file?)");
    uint64_t expect = dtype_bytes(e.dtype, int64_t(numel));
    if (e.end - e.begin != expect)
      fail(ctx, ": holds ", e.end - e.begin, " bytes but ", safetensors_dtype_name(e.dtype), " ",
           sh->dump(), " needs ", expect);
    h.tensors.push_back(std::move(e));
  }
  // Overlap check: sort by begin; empty tensors may share offsets.
  std::vector<const SafetensorsEntry*> order;
  for (auto& e : h.tensors) order.push_back(&e);
  std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->begin < b->begin; });
  for (size_t i = 1; i < order.size(); ++i) {
    const auto* a = order[i - 1];
    const auto* b = order[i];
    if (a->end > b->begin && b->end > b->begin)
      fail(path, ": tensors '", a->name, "' and '", b->name, "' overlap in the data section");
  }
  return h;
}

void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors) {
  nlohmann::ordered_json h = nlohmann::ordered_json::object();
  uint64_t off = 0;
  for (auto& t : tensors) {
    DM_CHECK(t.nbytes == dtype_bytes(t.dtype, [&] {
               int64_t n = 1;
               for (auto d : t.shape) n *= d;
               return n;
             }()),
             "write_safetensors: size mismatch for ", t.name);
    h[t.name] = {{"dtype", safetensors_dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {off, off + t.nbytes}}};
    off += t.nbytes;
  }
  std::string js = h.dump();
  while ((8 + js.size()) % 8) js.push_back(' ');  // keep the data section 8-byte aligned
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) fail(path, ": cannot create file");
  uint64_t n = js.size();
  char len[8];
  for (int i = 0; i < 8; ++i) len[i] = char((n >> (8 * i)) & 0xff);
  out.write(len, 8);
  out.write(js.data(), std::streamsize(js.size()));
  for (auto& t : tensors) out.write(static_cast<const char*>(t.data), std::streamsize(t.nbytes));
  if (!out) fail(path, ": write failed (disk full?)");
}

}  // namespace dm
