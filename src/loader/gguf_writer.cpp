// GGUF writer: serialises metadata and tensor infos exactly as parse_gguf reads them, then the padded data.
// Layout per ggml's docs/gguf.md; tensor offsets are relative to the data section and multiples of the alignment.
#include "loader/gguf_writer.h"

#include <cstdio>
#include <cstring>
#include <memory>

#include "core/error.h"

namespace dm {

namespace {

// Appends little-endian encodings to a byte vector.
struct Bytes {
  std::vector<uint8_t> b;
  template <typename T>
  void put(T v) {
    uint8_t tmp[sizeof(T)];
    std::memcpy(tmp, &v, sizeof(T));
    b.insert(b.end(), tmp, tmp + sizeof(T));
  }
  void str(const std::string& s) {
    put<uint64_t>(s.size());
    b.insert(b.end(), s.begin(), s.end());
  }
};

void put_int(Bytes& o, GgufType t, int64_t v) {
  switch (t) {
    case GgufType::U8: case GgufType::BOOL: o.put<uint8_t>(uint8_t(v)); break;
    case GgufType::I8: o.put<int8_t>(int8_t(v)); break;
    case GgufType::U16: o.put<uint16_t>(uint16_t(v)); break;
    case GgufType::I16: o.put<int16_t>(int16_t(v)); break;
    case GgufType::U32: o.put<uint32_t>(uint32_t(v)); break;
    case GgufType::I32: o.put<int32_t>(int32_t(v)); break;
    case GgufType::U64: o.put<uint64_t>(uint64_t(v)); break;
    case GgufType::I64: o.put<int64_t>(v); break;
    default: DM_CHECK(false, "not an integer type");
  }
}

void put_value(Bytes& o, const GgufValue& v, const std::string& key) {
  switch (v.type) {
    case GgufType::STRING: o.str(v.str); break;
    case GgufType::F32: o.put<float>(float(v.f)); break;
    case GgufType::F64: o.put<double>(v.f); break;
    case GgufType::ARRAY: {
      bool is_float = v.elem == GgufType::F32 || v.elem == GgufType::F64;
      size_t n = v.elem == GgufType::STRING ? v.strings.size()
                 : v.elem == GgufType::ARRAY ? v.arrays.size()
                 : is_float                  ? v.floats.size()
                                             : v.ints.size();
      if (n != v.size())
        fail("GGUF key '", key, "': array holds elements of another type than its element type ",
             gguf_type_name(v.elem));
      o.put<uint32_t>(uint32_t(v.elem));
      o.put<uint64_t>(n);
      if (v.elem == GgufType::STRING) {
        for (auto& s : v.strings) o.str(s);
      } else if (v.elem == GgufType::ARRAY) {
        for (auto& a : v.arrays) {
          if (a.type != GgufType::ARRAY) fail("GGUF key '", key, "': nested array element is not an array");
          put_value(o, a, key);
        }
      } else if (is_float) {
        for (double f : v.floats) v.elem == GgufType::F32 ? o.put<float>(float(f)) : o.put<double>(f);
      } else {
        for (int64_t i : v.ints) put_int(o, v.elem, i);
      }
      break;
    }
    default: put_int(o, v.type, v.i);
  }
}

}  // namespace

GgufWriter::GgufWriter(uint32_t alignment, uint32_t version) : alignment_(alignment), version_(version) {
  if (alignment == 0 || (alignment & (alignment - 1)) != 0) fail("GGUF alignment ", alignment, " is not a power of 2");
  if (version != 2 && version != 3) fail("GGUF version ", version, " cannot be written (2 or 3)");
  if (alignment != 32) set("general.alignment", GgufValue::u32(alignment));
}

void GgufWriter::set(const std::string& key, GgufValue v) {
  for (auto& [k, old] : metadata_)
    if (k == key) {
      old = std::move(v);
      return;
    }
  metadata_.emplace_back(key, std::move(v));
}

uint64_t GgufWriter::check_tensor(const std::string& name, const std::vector<int64_t>& ne, uint32_t type) const {
  const GgmlTypeInfo* ti = ggml_type_info(type);
  if (!ti) fail("GGUF tensor '", name, "': unknown ggml type ", type);
  if (ne.size() > 4) fail("GGUF tensor '", name, "': ", ne.size(), " dimensions (max 4)");
  for (auto& t : tensors_)
    if (t.name == name) fail("GGUF tensor '", name, "' added twice");
  int64_t n = 1;
  for (int64_t d : ne) {
    if (d < 0) fail("GGUF tensor '", name, "': negative dimension");
    n *= d;
  }
  if (!ne.empty() && ne[0] % ti->block != 0)
    fail("GGUF tensor '", name, "': innermost dimension ", ne[0], " is not a multiple of ", ti->block, " (",
         ti->name, ")");
  return uint64_t(n / ti->block * ti->bytes);
}

void GgufWriter::add_tensor(const std::string& name, std::vector<int64_t> ne, uint32_t ggml_type, const void* data,
                            size_t nbytes) {
  uint64_t want = check_tensor(name, ne, ggml_type);
  if (want != nbytes) fail("GGUF tensor '", name, "': ", nbytes, " bytes given, its type and shape need ", want);
  tensors_.push_back({name, std::move(ne), ggml_type, want, data, {}});
}

void GgufWriter::add_tensor(const std::string& name, std::vector<int64_t> ne, uint32_t ggml_type,
                            std::function<void(uint8_t*)> fill) {
  uint64_t want = check_tensor(name, ne, ggml_type);
  tensors_.push_back({name, std::move(ne), ggml_type, want, nullptr, std::move(fill)});
}

void GgufWriter::emit(const std::function<void(const void*, size_t)>& out) const {
  auto pad = [&](uint64_t n) { return (n + alignment_ - 1) / alignment_ * alignment_; };
  Bytes h;
  h.b.reserve(size_t(1) << 16);  // the header's first growth steps (4, 8 bytes) trip GCC 12's -Wstringop-overflow
  h.b.insert(h.b.end(), {'G', 'G', 'U', 'F'});
  h.put<uint32_t>(version_);
  h.put<uint64_t>(tensors_.size());
  h.put<uint64_t>(metadata_.size());
  for (auto& [k, v] : metadata_) {
    h.str(k);
    h.put<uint32_t>(uint32_t(v.type));
    put_value(h, v, k);
  }
  uint64_t offset = 0;
  for (auto& t : tensors_) {
    h.str(t.name);
    h.put<uint32_t>(uint32_t(t.ne.size()));
    for (int64_t d : t.ne) h.put<uint64_t>(uint64_t(d));
    h.put<uint32_t>(t.ggml_type);
    h.put<uint64_t>(offset);
    offset = pad(offset + t.nbytes);
  }
  h.b.resize(pad(h.b.size()), 0);
  out(h.b.data(), h.b.size());
  std::vector<uint8_t> zeros(alignment_, 0);
  for (auto& t : tensors_) {
    if (t.fill) {
      std::vector<uint8_t> buf(t.nbytes, 0);
      t.fill(buf.data());
      out(buf.data(), buf.size());
    } else {
      out(t.data, t.nbytes);
    }
    out(zeros.data(), pad(t.nbytes) - t.nbytes);
  }
}

void GgufWriter::write(const std::string& path) const {
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "wb"), &std::fclose);
  if (!f) fail(path, ": cannot open for writing");
  emit([&](const void* p, size_t n) {
    if (n && std::fwrite(p, 1, n, f.get()) != n) fail(path, ": write failed (disk full?)");
  });
  if (std::fflush(f.get()) != 0) fail(path, ": write failed (disk full?)");
}

std::vector<uint8_t> GgufWriter::to_bytes() const {
  std::vector<uint8_t> all;
  emit([&](const void* p, size_t n) {
    auto* b = static_cast<const uint8_t*>(p);
    all.insert(all.end(), b, b + n);
  });
  return all;
}

}  // namespace dm
