// Robustness of the safetensors parser and WeightStore: truncation at every length, corrupted header bytes, bad
// JSON, wrong dtype strings, overlapping or out-of-range offsets, wrong shapes, missing tensors and bad shard
// indexes. Each must be a dm::Error naming the file (and the tensor where there is one), never a crash.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include <unistd.h>

#include "core/error.h"
#include "core/mapped_file.h"
#include "loader/safetensors.h"
#include "loader/weights.h"

using namespace dm;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path dir;
  TempDir() {
    dir = fs::temp_directory_path() / ("dm_st_test_" + std::to_string(::getpid()));
    fs::create_directories(dir);
  }
  ~TempDir() { fs::remove_all(dir); }
  std::string file(const std::string& name) const { return (dir / name).string(); }
};

std::string header_file(const std::string& json, size_t data_bytes = 0) {
  std::string s(8, '\0');
  uint64_t n = json.size();
  for (int i = 0; i < 8; ++i) s[size_t(i)] = char((n >> (8 * i)) & 0xff);
  return s + json + std::string(data_bytes, '\x01');
}

// parse must throw dm::Error mentioning every part.
void expect_parse_error(const std::string& bytes, std::initializer_list<const char*> parts) {
  try {
    parse_safetensors_header(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "m.safetensors");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("m.safetensors"), std::string::npos) << msg;
    for (const char* p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
  }
}

std::string valid_file(const TempDir& t) {
  std::vector<float> a(12, 1.5f);
  std::vector<uint16_t> b(6, 0x3f80);
  std::string p = t.file("model.safetensors");
  write_safetensors(p, {{"model.a.weight", DType::F32, {3, 4}, a.data(), 48},
                        {"model.b.weight", DType::BF16, {6}, b.data(), 12}});
  return read_file(p);
}

}  // namespace

TEST(Safetensors, RoundTrip) {
  TempDir t;
  std::string bytes = valid_file(t);
  auto h = parse_safetensors_header(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "x");
  ASSERT_EQ(h.tensors.size(), 2u);
  WeightStore s = WeightStore::open_safetensors(t.dir.string());
  const TensorView& a = s.get("model.a.weight", {DType::F32}, {3, 4});
  EXPECT_EQ(a.f32()[11], 1.5f);
}

TEST(Safetensors, TruncatedAtEveryLength) {
  TempDir t;
  std::string bytes = valid_file(t);
  for (size_t n = 0; n < bytes.size(); ++n) {
    std::string cut = bytes.substr(0, n);
    EXPECT_THROW(parse_safetensors_header(reinterpret_cast<const uint8_t*>(cut.data()), n, "m.safetensors"), Error)
        << n;
  }
  // And through the file loader, which must name the file.
  std::string p = t.file("cut.safetensors");
  std::ofstream(p, std::ios::binary) << bytes.substr(0, bytes.size() - 3);
  try {
    WeightStore::open_safetensors(p);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cut.safetensors"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("model."), std::string::npos) << e.what();
  }
}

TEST(Safetensors, CorruptedHeaderBytesNeverCrash) {
  TempDir t;
  std::string bytes = valid_file(t);
  std::mt19937 rng(7);
  int errors = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    std::string b = bytes;
    int n_flips = 1 + int(rng() % 4);
    for (int k = 0; k < n_flips; ++k) {
      size_t pos = rng() % std::min<size_t>(b.size(), 8 + 160);  // the length field and the JSON
      b[pos] = char(rng() % 256);
    }
    try {
      parse_safetensors_header(reinterpret_cast<const uint8_t*>(b.data()), b.size(), "m.safetensors");
    } catch (const Error& e) {
      ++errors;
      EXPECT_NE(std::string(e.what()).find("m.safetensors"), std::string::npos);
    }
  }
  EXPECT_GT(errors, 1000);
}

TEST(Safetensors, BadHeaders) {
  expect_parse_error(header_file("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]"), {"JSON"});
  expect_parse_error(header_file("[1, 2, 3]"), {"object"});
  expect_parse_error(header_file("{\"t\": {\"dtype\": \"F33\", \"shape\": [2], \"data_offsets\": [0, 8]}}", 8),
                     {"'t'", "F33"});
  expect_parse_error(header_file("{\"t\": {\"dtype\": 5, \"shape\": [2], \"data_offsets\": [0, 8]}}", 8),
                     {"'t'", "dtype"});
  expect_parse_error(header_file("{\"t\": {\"dtype\": \"F32\", \"shape\": [-2], \"data_offsets\": [0, 8]}}", 8),
                     {"'t'", "shape"});
  expect_parse_error(header_file("{\"t\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [0, 8]}}", 8),
                     {"'t'", "bytes"});
  expect_parse_error(header_file("{\"t\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 16]}}", 8),
                     {"'t'", "past the end"});
  expect_parse_error(header_file("{\"t\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [8, 0]}}", 8),
                     {"'t'"});
  expect_parse_error(header_file("{\"t\": {\"dtype\": \"F32\", \"shape\": [2]}}", 8), {"'t'", "data_offsets"});
  expect_parse_error(header_file("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
                                 " \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}",
                                 12),
                     {"overlap"});
  expect_parse_error(header_file("{\"t\": {\"dtype\": \"F32\", \"shape\": [4294967296, 4294967296, 4294967296],"
                                 " \"data_offsets\": [0, 8]}}",
                                 8),
                     {"'t'"});
  std::string huge(8, '\xff');
  expect_parse_error(huge + "{}", {"header length"});
}

TEST(WeightStore, WrongShapeDtypeAndMissingTensorsNameTheFileAndTensor) {
  TempDir t;
  valid_file(t);
  WeightStore s = WeightStore::open_safetensors(t.dir.string());
  auto expect_msg = [](auto fn, std::initializer_list<const char*> parts) {
    try {
      fn();
      ADD_FAILURE();
    } catch (const Error& e) {
      for (const char* p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
    }
  };
  expect_msg([&] { s.get("model.a.weight", {DType::F32}, {4, 3}); }, {"model.safetensors", "model.a.weight", "[4, 3]"});
  expect_msg([&] { s.get("model.a.weight", {DType::BF16}, {3, 4}); }, {"model.safetensors", "model.a.weight", "BF16"});
  expect_msg([&] { s.get("model.c.weight", {DType::F32}, {1}); }, {"model.c.weight", "missing"});
}

TEST(WeightStore, BadShardIndexes) {
  TempDir t;
  valid_file(t);
  fs::rename(t.file("model.safetensors"), t.file("shard-1.safetensors"));
  auto write_index = [&](const std::string& text) {
    std::ofstream(t.file("model.safetensors.index.json")) << text;
  };
  auto expect_msg = [&](const char* part) {
    try {
      WeightStore::open_safetensors(t.dir.string());
      ADD_FAILURE() << part;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    }
  };
  write_index("{\"weight_map\": {\"model.a.weight\": \"shard-1.safetensors\", \"model.b.weight\": \"shard-1.safetensors\"}}");
  EXPECT_EQ(WeightStore::open_safetensors(t.dir.string()).size(), 2u);
  write_index("{\"weight_map\": {\"model.x.weight\": \"shard-1.safetensors\"}}");
  expect_msg("model.x.weight");
  write_index("{\"weight_map\": {\"model.a.weight\": \"../etc/passwd\"}}");
  expect_msg("plain file name");
  write_index("{\"weight_map\": {\"model.a.weight\": \"shard-2.safetensors\"}}");
  expect_msg("shard-2.safetensors");
  write_index("{\"weight_map\": 3}");
  expect_msg("weight_map");
  write_index("not json");
  expect_msg("index");
}

TEST(WeightStore, EmptyDirectory) {
  TempDir t;
  EXPECT_THROW(WeightStore::open_safetensors(t.dir.string()), Error);
}
