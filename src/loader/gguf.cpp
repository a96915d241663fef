// GGUF reader: header and metadata parsing with full validation, GGML type table, split models.
// Layout per ggml's docs/gguf.md: every count and length is a little-endian u64 (v2+), strings are u64 length +
// bytes (no NUL), arrays are u32 element type + u64 count + elements. Untrusted counts are bounded by the bytes
// left in the file before anything is allocated from them.
#include "loader/gguf.h"

#include <cstring>
#include <regex>
#include <set>

#include "core/error.h"

namespace dm {

namespace {

constexpr int kMaxDims = 4;         // GGML_MAX_DIMS
constexpr int kMaxArrayDepth = 8;   // nested arrays deeper than this are surely corrupt
constexpr uint64_t kMaxAlignment = 1u << 20;

// ggml.h enum ggml_type; gaps are ids removed from ggml (4, 5, 31-33, 36-38).
constexpr GgmlTypeInfo kTypes[] = {
    {"F32", 1, 4},        {"F16", 1, 2},       {"Q4_0", 32, 18},     {"Q4_1", 32, 20},    {nullptr, 0, 0},
    {nullptr, 0, 0},      {"Q5_0", 32, 22},    {"Q5_1", 32, 24},     {"Q8_0", 32, 34},    {"Q8_1", 32, 36},
    {"Q2_K", 256, 84},    {"Q3_K", 256, 110},  {"Q4_K", 256, 144},   {"Q5_K", 256, 176},  {"Q6_K", 256, 210},
    {"Q8_K", 256, 292},   {"IQ2_XXS", 256, 66}, {"IQ2_XS", 256, 74}, {"IQ3_XXS", 256, 98}, {"IQ1_S", 256, 50},
    {"IQ4_NL", 32, 18},   {"IQ3_S", 256, 110}, {"IQ2_S", 256, 82},   {"IQ4_XS", 256, 136}, {"I8", 1, 1},
    {"I16", 1, 2},        {"I32", 1, 4},       {"I64", 1, 8},        {"F64", 1, 8},       {"IQ1_M", 256, 56},
    {"BF16", 1, 2},       {nullptr, 0, 0},     {nullptr, 0, 0},      {nullptr, 0, 0},     {"TQ1_0", 256, 54},
    {"TQ2_0", 256, 66},   {nullptr, 0, 0},     {nullptr, 0, 0},      {nullptr, 0, 0},     {"MXFP4", 32, 17},
};

constexpr std::pair<uint32_t, DType> kDTypes[] = {
    {0, DType::F32},  {1, DType::F16},  {30, DType::BF16}, {8, DType::Q8_0}, {2, DType::Q4_0}, {12, DType::Q4_K},
    {13, DType::Q5_K}, {14, DType::Q6_K}, {24, DType::I8},  {25, DType::I16}, {26, DType::I32}, {27, DType::I64},
    {28, DType::F64},
};

// Bounds-checked cursor over the file image; every read names the file and what was being read.
class Reader {
 public:
  Reader(const uint8_t* data, size_t size, const std::string& path) : p_(data), size_(size), path_(path) {}

  size_t pos() const { return pos_; }
  size_t left() const { return size_ - pos_; }

  void need(uint64_t n, const std::string& what) const {
    if (n > left())
      fail(path_, ": truncated GGUF file: ", what, " needs ", n, " bytes at offset ", pos_, ", only ", left(),
           " left");
  }
  template <typename T>
  T get(const std::string& what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, p_ + pos_, sizeof(T));  // note: GGUF is little-endian, as are the hosts we build for
    pos_ += sizeof(T);
    return v;
  }
  std::string str(const std::string& what) {
    uint64_t n = get<uint64_t>(what + " length");
    if (n > left()) fail(path_, ": ", what, " has length ", n, " but only ", left(), " bytes are left in the file");
    std::string s(reinterpret_cast<const char*>(p_ + pos_), size_t(n));
    pos_ += size_t(n);
    return s;
  }
  const std::string& path() const { return path_; }

 private:
  const uint8_t* p_;
  size_t size_;
  size_t pos_ = 0;
  const std::string& path_;
};

// Smallest encoding of one value of type t, to bound counts read from the file.
uint64_t min_value_bytes(GgufType t) {
  switch (t) {
    case GgufType::U8: case GgufType::I8: case GgufType::BOOL: return 1;
    case GgufType::U16: case GgufType::I16: return 2;
    case GgufType::U32: case GgufType::I32: case GgufType::F32: return 4;
    case GgufType::U64: case GgufType::I64: case GgufType::F64: case GgufType::STRING: return 8;
    case GgufType::ARRAY: return 12;
  }
  return 1;
}

bool valid_type(uint32_t t) { return t <= uint32_t(GgufType::F64); }

int64_t read_int(Reader& r, GgufType t, const std::string& what) {
  switch (t) {
    case GgufType::U8: return r.get<uint8_t>(what);
    case GgufType::I8: return r.get<int8_t>(what);
    case GgufType::U16: return r.get<uint16_t>(what);
    case GgufType::I16: return r.get<int16_t>(what);
    case GgufType::U32: return r.get<uint32_t>(what);
    case GgufType::I32: return r.get<int32_t>(what);
    case GgufType::U64: return int64_t(r.get<uint64_t>(what));  // bit pattern; getters check the range
    case GgufType::I64: return r.get<int64_t>(what);
    case GgufType::BOOL: {
      uint8_t b = r.get<uint8_t>(what);
      if (b > 1) fail(r.path(), ": ", what, ": bool value ", int(b), " is neither 0 nor 1");
      return b;
    }
    default: DM_CHECK(false, "not an integer type");
  }
}

double read_float(Reader& r, GgufType t, const std::string& what) {
  return t == GgufType::F32 ? double(r.get<float>(what)) : r.get<double>(what);
}

GgufValue read_value(Reader& r, GgufType t, const std::string& what, int depth) {
  GgufValue v;
  v.type = t;
  if (t == GgufType::STRING) {
    v.str = r.str(what);
  } else if (t == GgufType::F32 || t == GgufType::F64) {
    v.f = read_float(r, t, what);
  } else if (t != GgufType::ARRAY) {
    v.i = read_int(r, t, what);
  } else {
    if (depth >= kMaxArrayDepth) fail(r.path(), ": ", what, ": arrays nested deeper than ", kMaxArrayDepth);
    uint32_t et = r.get<uint32_t>(what + " element type");
    if (!valid_type(et)) fail(r.path(), ": ", what, ": unknown array element type ", et);
    v.elem = GgufType(et);
    uint64_t n = r.get<uint64_t>(what + " element count");
    if (n > r.left() / min_value_bytes(v.elem))
      fail(r.path(), ": ", what, ": array of ", n, " ", gguf_type_name(v.elem), " elements cannot fit in the ",
           r.left(), " bytes left in the file");
    if (v.elem == GgufType::STRING) {
      v.strings.reserve(size_t(n));
      for (uint64_t k = 0; k < n; ++k) v.strings.push_back(r.str(what + "[" + std::to_string(k) + "]"));
    } else if (v.elem == GgufType::ARRAY) {
      v.arrays.reserve(size_t(n));
      for (uint64_t k = 0; k < n; ++k)
        v.arrays.push_back(read_value(r, GgufType::ARRAY, what + "[" + std::to_string(k) + "]", depth + 1));
    } else if (v.elem == GgufType::F32 || v.elem == GgufType::F64) {
      v.floats.resize(size_t(n));
      for (uint64_t k = 0; k < n; ++k) v.floats[k] = read_float(r, v.elem, what);
    } else {
      v.ints.resize(size_t(n));
      for (uint64_t k = 0; k < n; ++k) v.ints[k] = read_int(r, v.elem, what);
    }
  }
  return v;
}

}  // namespace

std::string_view gguf_type_name(GgufType t) {
  static const char* names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array",
                                "u64", "i64", "f64"};
  return valid_type(uint32_t(t)) ? names[uint32_t(t)] : "?";
}

bool GgufValue::is_int() const {
  switch (type) {
    case GgufType::U8: case GgufType::I8: case GgufType::U16: case GgufType::I16: case GgufType::U32:
    case GgufType::I32: case GgufType::U64: case GgufType::I64: return true;
    default: return false;
  }
}
bool GgufValue::is_float() const { return type == GgufType::F32 || type == GgufType::F64; }
uint64_t GgufValue::size() const {
  return ints.size() + floats.size() + strings.size() + arrays.size();
}
GgufValue GgufValue::of_int(GgufType t, int64_t v) {
  GgufValue x;
  x.type = t;
  x.i = v;
  return x;
}
GgufValue GgufValue::of_float(GgufType t, double v) {
  GgufValue x;
  x.type = t;
  x.f = v;
  return x;
}
GgufValue GgufValue::string(std::string s) {
  GgufValue x;
  x.type = GgufType::STRING;
  x.str = std::move(s);
  return x;
}
GgufValue GgufValue::string_array(std::vector<std::string> v) {
  GgufValue x;
  x.type = GgufType::ARRAY;
  x.elem = GgufType::STRING;
  x.strings = std::move(v);
  return x;
}
GgufValue GgufValue::int_array(GgufType elem, std::vector<int64_t> v) {
  GgufValue x;
  x.type = GgufType::ARRAY;
  x.elem = elem;
  x.ints = std::move(v);
  return x;
}
GgufValue GgufValue::float_array(GgufType elem, std::vector<double> v) {
  GgufValue x;
  x.type = GgufType::ARRAY;
  x.elem = elem;
  x.floats = std::move(v);
  return x;
}
GgufValue GgufValue::array_array(std::vector<GgufValue> v) {
  GgufValue x;
  x.type = GgufType::ARRAY;
  x.elem = GgufType::ARRAY;
  x.arrays = std::move(v);
  return x;
}

const GgmlTypeInfo* ggml_type_info(uint32_t type) {
  if (type >= std::size(kTypes) || !kTypes[type].name) return nullptr;
  return &kTypes[type];
}

std::optional<DType> ggml_to_dtype(uint32_t type) {
  for (auto& [g, d] : kDTypes)
    if (g == type) return d;
  return std::nullopt;
}

uint32_t dtype_to_ggml(DType t) {
  for (auto& [g, d] : kDTypes)
    if (d == t) return g;
  fail("dtype ", dtype_name(t), " cannot be stored in GGUF");
}

std::string ggml_type_name(uint32_t type) {
  const GgmlTypeInfo* t = ggml_type_info(type);
  return t ? t->name : "type " + std::to_string(type);
}

int64_t GgufTensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : ne) n *= d;
  return n;
}

GgufHeader parse_gguf(const uint8_t* data, size_t size, const std::string& path) {
  Reader r(data, size, path);
  r.need(4, "magic");
  if (std::memcmp(data, "GGUF", 4) != 0) fail(path, ": not a GGUF file (bad magic)");
  r.get<uint32_t>("magic");
  GgufHeader h;
  h.version = r.get<uint32_t>("version");
  if (h.version == 1) fail(path, ": GGUF version 1 is not supported (only versions 2 and 3)");
  if ((h.version & 0xffff) == 0 && h.version != 0)
    fail(path, ": big-endian GGUF files are not supported (version field reads ", h.version, ")");
  if (h.version != 2 && h.version != 3)
    fail(path, ": unsupported GGUF version ", h.version, " (supported: 2, 3)");
  uint64_t n_tensors = r.get<uint64_t>("tensor count");
  uint64_t n_kv = r.get<uint64_t>("metadata count");
  // Minimal encodings: a key/value is >= 13 bytes (8 length + 4 type + 1 value), a tensor info >= 24.
  if (n_kv > r.left() / 13) fail(path, ": metadata count ", n_kv, " cannot fit in the file (corrupt header?)");
  if (n_tensors > r.left() / 24) fail(path, ": tensor count ", n_tensors, " cannot fit in the file (corrupt header?)");

  std::set<std::string, std::less<>> keys;
  h.metadata.reserve(size_t(n_kv));
  for (uint64_t k = 0; k < n_kv; ++k) {
    std::string key = r.str("metadata key #" + std::to_string(k));
    uint32_t t = r.get<uint32_t>("type of key '" + key + "'");
    if (!valid_type(t)) fail(path, ": metadata key '", key, "' has unknown value type ", t);
    if (!keys.insert(key).second) fail(path, ": duplicate metadata key '", key, "'");
    GgufValue v = read_value(r, GgufType(t), "metadata key '" + key + "'", 0);
    if (key == "general.alignment") {
      if (v.type != GgufType::U32) fail(path, ": general.alignment must be u32, found ", gguf_type_name(v.type));
      if (v.i == 0 || (v.i & (v.i - 1)) != 0 || uint64_t(v.i) > kMaxAlignment)
        fail(path, ": general.alignment ", v.i, " is not a power of two up to ", kMaxAlignment);
      h.alignment = uint64_t(v.i);
    }
    h.metadata.emplace_back(std::move(key), std::move(v));
  }

  std::set<std::string, std::less<>> names;
  h.tensors.reserve(size_t(n_tensors));
  for (uint64_t k = 0; k < n_tensors; ++k) {
    GgufTensorInfo t;
    t.name = r.str("name of tensor #" + std::to_string(k));
    std::string ctx = path + ": tensor '" + t.name + "'";
    if (!names.insert(t.name).second) fail(ctx, ": duplicate tensor name");
    uint32_t n_dims = r.get<uint32_t>("dims of tensor '" + t.name + "'");
    if (n_dims > uint32_t(kMaxDims)) fail(ctx, ": ", n_dims, " dimensions (max ", kMaxDims, ")");
    uint64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      uint64_t ne = r.get<uint64_t>("dims of tensor '" + t.name + "'");
      if (ne > (uint64_t(1) << 48)) fail(ctx, ": dimension ", d, " is ", ne, " (corrupt?)");
      if (ne != 0 && numel > (uint64_t(1) << 56) / ne) fail(ctx, ": element count overflows");
      numel *= ne;
      t.ne.push_back(int64_t(ne));
    }
    t.ggml_type = r.get<uint32_t>("type of tensor '" + t.name + "'");
    const GgmlTypeInfo* ti = ggml_type_info(t.ggml_type);
    if (!ti) fail(ctx, ": unknown ggml type ", t.ggml_type);
    if (!t.ne.empty() && t.ne[0] % ti->block != 0)
      fail(ctx, ": innermost dimension ", t.ne[0], " is not a multiple of the ", ti->name, " block size ", ti->block);
    if (t.ne.empty() && ti->block != 1) fail(ctx, ": a scalar cannot have block type ", ti->name);
    t.nbytes = numel / uint64_t(ti->block) * uint64_t(ti->bytes);
    t.offset = r.get<uint64_t>("offset of tensor '" + t.name + "'");
    if (t.offset % h.alignment != 0)
      fail(ctx, ": data offset ", t.offset, " is not a multiple of the alignment ", h.alignment);
    h.tensors.push_back(std::move(t));
  }

  uint64_t pos = r.pos();
  h.data_start = (pos + h.alignment - 1) / h.alignment * h.alignment;
  if (h.data_start > size && !h.tensors.empty())
    fail(path, ": truncated GGUF file: data section would start at ", h.data_start, " past the end (", size, ")");
  uint64_t data_size = h.data_start <= size ? size - h.data_start : 0;
  for (auto& t : h.tensors)
    if (t.offset > data_size || t.nbytes > data_size - t.offset)
      fail(path, ": tensor '", t.name, "': data [", t.offset, ", ", t.offset + t.nbytes,
           ") lies outside the data section of ", data_size, " bytes (truncated file?)");
  return h;
}

std::vector<std::string> gguf_split_paths(const std::string& path) {
  static const std::regex pat(R"((.*)-(\d{5})-of-(\d{5})\.gguf)");
  std::smatch m;
  if (!std::regex_match(path, m, pat)) return {path};
  int n = std::stoi(m[3].str());
  if (n < 1) fail(path, ": split file name says 0 parts");
  std::vector<std::string> out;
  for (int k = 1; k <= n; ++k) {
    char num[32];
    std::snprintf(num, sizeof num, "-%05d-of-%05d.gguf", k, n);
    out.push_back(m[1].str() + num);
  }
  return out;
}

GgufFile GgufFile::open(const std::string& path) {
  GgufFile g;
  std::vector<std::string> paths = gguf_split_paths(path);
  for (auto& p : paths) {
    if (!file_exists(p)) fail(p, ": missing part ", &p - paths.data() + 1, " of ", paths.size(), " of the split model ",
                              path);
    Part part;
    part.file = std::make_shared<MappedFile>(p);
    part.header = parse_gguf(part.file->data(), part.file->size(), p);
    g.parts_.push_back(std::move(part));
  }
  for (size_t k = 0; k < g.parts_[0].header.metadata.size(); ++k)
    g.key_index_.emplace(g.parts_[0].header.metadata[k].first, k);

  // Split models: each part says its index (split.no, from 0) and the part count; the first holds the metadata.
  for (size_t k = 0; k < g.parts_.size(); ++k) {
    const auto& md = g.parts_[k].header.metadata;
    auto get = [&](const char* key) -> std::optional<int64_t> {
      for (auto& [name, v] : md)
        if (name == key && v.is_int()) return v.i;
      return std::nullopt;
    };
    const std::string& p = g.parts_[k].file->path();
    auto count = get("split.count");
    auto no = get("split.no");
    if (paths.size() == 1 && count && *count > 1)
      fail(p, ": this is part of a split model of ", *count, " files, but its name lacks -0000K-of-0000N.gguf");
    if (paths.size() > 1) {
      if (!count || *count != int64_t(paths.size()))
        fail(p, ": split.count is ", count ? std::to_string(*count) : "missing", ", expected ", paths.size());
      if (!no || *no != int64_t(k)) fail(p, ": split.no is ", no ? std::to_string(*no) : "missing", ", expected ", k);
    }
  }
  for (auto& part : g.parts_) {
    for (auto& t : part.header.tensors) {
      if (g.tensor_index_.count(t.name))
        fail(part.file->path(), ": tensor '", t.name, "' also appears in another part of the split model");
      g.tensor_index_.emplace(t.name, g.tensors_.size());
      g.tensors_.push_back({&t, part.file->data() + part.header.data_start + t.offset, &part.file->path()});
    }
  }
  if (auto total = g.opt_int("split.tensors.count"); total && *total != int64_t(g.tensors_.size()))
    fail(path, ": split.tensors.count is ", *total, " but the parts hold ", g.tensors_.size(), " tensors");
  return g;
}

const GgufValue* GgufFile::find(std::string_view key) const {
  auto it = key_index_.find(key);
  return it == key_index_.end() ? nullptr : &metadata()[it->second].second;
}

int64_t GgufFile::get_int(std::string_view key) const {
  auto v = opt_int(key);
  if (!v) fail(path(), ": missing metadata key '", key, "'");
  return *v;
}

std::optional<int64_t> GgufFile::opt_int(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (!v->is_int()) fail(path(), ": metadata key '", key, "' must be an integer, found ", gguf_type_name(v->type));
  if (v->type == GgufType::U64 && v->i < 0) fail(path(), ": metadata key '", key, "' is out of range");
  return v->i;
}

double GgufFile::get_float(std::string_view key) const {
  auto v = opt_float(key);
  if (!v) fail(path(), ": missing metadata key '", key, "'");
  return *v;
}

std::optional<double> GgufFile::opt_float(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->is_float()) return v->f;
  if (v->is_int()) return double(v->i);
  fail(path(), ": metadata key '", key, "' must be a number, found ", gguf_type_name(v->type));
}

std::optional<bool> GgufFile::opt_bool(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != GgufType::BOOL) fail(path(), ": metadata key '", key, "' must be bool, found ", gguf_type_name(v->type));
  return v->i != 0;
}

std::string GgufFile::get_string(std::string_view key) const {
  auto v = opt_string(key);
  if (!v) fail(path(), ": missing metadata key '", key, "'");
  return *v;
}

std::optional<std::string> GgufFile::opt_string(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != GgufType::STRING)
    fail(path(), ": metadata key '", key, "' must be a string, found ", gguf_type_name(v->type));
  return v->str;
}

const GgufValue& GgufFile::get_array(std::string_view key, GgufType elem) const {
  const GgufValue* v = find(key);
  if (!v) fail(path(), ": missing metadata key '", key, "'");
  if (v->type != GgufType::ARRAY || v->elem != elem)
    fail(path(), ": metadata key '", key, "' must be an array of ", gguf_type_name(elem), ", found ",
         gguf_type_name(v->type), v->type == GgufType::ARRAY ? cat(" of ", gguf_type_name(v->elem)) : "");
  return *v;
}

const GgufTensor* GgufFile::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

TensorView GgufFile::view(const GgufTensor& t) const {
  auto dt = ggml_to_dtype(t.info->ggml_type);
  if (!dt)
    fail(*t.file, ": tensor '", t.name(), "' has ggml type ", ggml_type_name(t.info->ggml_type),
         ", which deepmoe does not support (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K)");
  TensorView v;
  v.dtype = *dt;
  v.shape = t.info->shape();
  v.data = t.data;
  v.nbytes = size_t(t.info->nbytes);
  return v;
}

std::vector<std::shared_ptr<MappedFile>> GgufFile::files() const {
  std::vector<std::shared_ptr<MappedFile>> out;
  for (auto& p : parts_) out.push_back(p.file);
  return out;
}

}  // namespace dm
