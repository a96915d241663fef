// GGUF reader/writer tests: llama.cpp-written files (golden models, vocab-only files), write->read round trips of
// every metadata type, split models, and a corruption battery (every truncation, byte flips, crafted huge counts)
// that must give dm::Error naming the file, never a crash.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>

#include <unistd.h>

#include "core/error.h"
#include "loader/gguf.h"
#include "loader/gguf_writer.h"
#include "loader/weights.h"

namespace dm {
namespace {

namespace fs = std::filesystem;
const std::string kData = DM_TEST_DATA;

std::string temp_dir() {
  fs::path d = fs::temp_directory_path() / ("dm_gguf_test_" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d.string();
}

// Parses `b`; returns the dm::Error message, or "" if it parsed. Any other exception fails the test.
std::string parse_error(const std::vector<uint8_t>& b) {
  try {
    parse_gguf(b.data(), b.size(), "bad.gguf");
    return "";
  } catch (const Error& e) {
    return e.what();
  }
}

// A small file using every metadata type, nested arrays and three tensor types.
std::vector<float> kF32 = {1, -2, 3.5f, 0, 7, 8, 9, 10, 11, 12, -13, 14};
GgufWriter sample_writer(uint32_t alignment = 32, uint32_t version = 3) {
  GgufWriter w(alignment, version);
  w.set("general.architecture", GgufValue::string("llama"));
  w.set("t.u8", GgufValue::of_int(GgufType::U8, 255));
  w.set("t.i8", GgufValue::of_int(GgufType::I8, -128));
  w.set("t.u16", GgufValue::of_int(GgufType::U16, 65535));
  w.set("t.i16", GgufValue::of_int(GgufType::I16, -32768));
  w.set("t.u32", GgufValue::u32(4000000000u));
  w.set("t.i32", GgufValue::i32(-2000000000));
  w.set("t.u64", GgufValue::of_int(GgufType::U64, int64_t(1) << 40));
  w.set("t.i64", GgufValue::of_int(GgufType::I64, -(int64_t(1) << 50)));
  w.set("t.f32", GgufValue::f32(0.1f));
  w.set("t.f64", GgufValue::of_float(GgufType::F64, 0.1));
  w.set("t.bool", GgufValue::boolean(true));
  w.set("t.str", GgufValue::string(std::string("caf\xc3\xa9 \0x", 8)));
  w.set("t.strs", GgufValue::string_array({"a", "", "Ġ Ġ"}));
  w.set("t.i32s", GgufValue::int_array(GgufType::I32, {1, -2, 3}));
  w.set("t.f32s", GgufValue::float_array(GgufType::F32, {0.5, -1.25}));
  w.set("t.bools", GgufValue::int_array(GgufType::BOOL, {1, 0}));
  w.set("t.nested", GgufValue::array_array({GgufValue::string_array({"x", "yz"}), GgufValue::string_array({})}));
  w.add_tensor("a.weight", {3, 4}, 0, kF32.data(), kF32.size() * 4);
  w.add_tensor("b.f16", {8}, 1, [](uint8_t* dst) {
    for (int i = 0; i < 8; ++i) {
      uint16_t h = f32_to_f16(float(i) - 3.5f);
      std::memcpy(dst + 2 * i, &h, 2);
    }
  });
  w.add_tensor("c.q8", {32, 2}, 8, [](uint8_t* dst) {
    for (int i = 0; i < 68; ++i) dst[i] = uint8_t(i * 7);
  });
  return w;
}

TEST(Gguf, RoundTripEveryType) {
  for (uint32_t version : {2u, 3u}) {
    for (uint32_t alignment : {32u, 64u, 1u}) {
      std::vector<uint8_t> b = sample_writer(alignment, version).to_bytes();
      GgufHeader h = parse_gguf(b.data(), b.size(), "rt.gguf");
      EXPECT_EQ(h.version, version);
      EXPECT_EQ(h.alignment, alignment);
      EXPECT_EQ(h.data_start % alignment, 0u);
      std::map<std::string, GgufValue> m(h.metadata.begin(), h.metadata.end());
      EXPECT_EQ(m["t.u8"].i, 255);
      EXPECT_EQ(m["t.i8"].i, -128);
      EXPECT_EQ(m["t.u16"].i, 65535);
      EXPECT_EQ(m["t.i16"].i, -32768);
      EXPECT_EQ(m["t.u32"].i, 4000000000ll);
      EXPECT_EQ(m["t.i32"].i, -2000000000);
      EXPECT_EQ(m["t.u64"].i, int64_t(1) << 40);
      EXPECT_EQ(m["t.i64"].i, -(int64_t(1) << 50));
      EXPECT_EQ(m["t.f32"].f, double(0.1f));
      EXPECT_EQ(m["t.f64"].f, 0.1);
      EXPECT_EQ(m["t.bool"].type, GgufType::BOOL);
      EXPECT_EQ(m["t.bool"].i, 1);
      EXPECT_EQ(m["t.str"].str, std::string("caf\xc3\xa9 \0x", 8));
      EXPECT_EQ(m["t.strs"].strings, (std::vector<std::string>{"a", "", "Ġ Ġ"}));
      EXPECT_EQ(m["t.i32s"].ints, (std::vector<int64_t>{1, -2, 3}));
      EXPECT_EQ(m["t.f32s"].floats, (std::vector<double>{0.5, -1.25}));
      EXPECT_EQ(m["t.bools"].ints, (std::vector<int64_t>{1, 0}));
      ASSERT_EQ(m["t.nested"].arrays.size(), 2u);
      EXPECT_EQ(m["t.nested"].arrays[0].strings, (std::vector<std::string>{"x", "yz"}));
      EXPECT_EQ(m["t.nested"].arrays[1].elem, GgufType::STRING);
      ASSERT_EQ(h.tensors.size(), 3u);
      EXPECT_EQ(h.tensors[0].shape(), (std::vector<int64_t>{4, 3}));
      EXPECT_EQ(h.tensors[0].nbytes, 48u);
      EXPECT_EQ(0, std::memcmp(b.data() + h.data_start + h.tensors[0].offset, kF32.data(), 48));
      EXPECT_EQ(h.tensors[1].ggml_type, 1u);
      uint16_t f16;
      std::memcpy(&f16, b.data() + h.data_start + h.tensors[1].offset + 2 * 7, 2);
      EXPECT_EQ(f16_to_f32(f16), 3.5f);
      EXPECT_EQ(h.tensors[2].nbytes, 68u);
      EXPECT_EQ(h.tensors[2].offset % alignment, 0u);
      EXPECT_EQ(b[h.data_start + h.tensors[2].offset + 67], uint8_t(67 * 7));
      EXPECT_EQ(h.data_start + h.tensors[2].offset + 68 + (alignment > 4 ? (alignment - 68 % alignment) % alignment : 0),
                b.size());
    }
  }
}

TEST(Gguf, FileAccessorsAndViews) {
  std::string path = temp_dir() + "/sample.gguf";
  sample_writer().write(path);
  GgufFile g = GgufFile::open(path);
  EXPECT_EQ(g.architecture(), "llama");
  EXPECT_EQ(g.get_int("t.u32"), 4000000000ll);
  EXPECT_EQ(g.get_float("t.i32"), -2e9);
  EXPECT_EQ(g.opt_bool("t.bool"), true);
  EXPECT_FALSE(g.opt_int("nope").has_value());
  EXPECT_EQ(g.get_array("t.strs", GgufType::STRING).strings.size(), 3u);
  auto expect_msg = [&](auto fn, const std::string& want) {
    try {
      fn();
      ADD_FAILURE() << "no error, expected " << want;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
  };
  expect_msg([&] { g.get_int("t.str"); }, "'t.str' must be an integer");
  expect_msg([&] { g.get_int("missing.key"); }, "missing metadata key 'missing.key'");
  expect_msg([&] { g.get_array("t.strs", GgufType::I32); }, "must be an array of i32, found array of string");
  expect_msg([&] { g.opt_bool("t.u8"); }, "must be bool");
  const GgufTensor* q = g.find_tensor("c.q8");
  ASSERT_NE(q, nullptr);
  TensorView v = g.view(*q);
  EXPECT_EQ(v.dtype, DType::Q8_0);
  EXPECT_EQ(v.shape, (std::vector<int64_t>{2, 32}));
  EXPECT_EQ(v.nbytes, dtype_bytes(DType::Q8_0, 64));
  EXPECT_EQ(static_cast<const uint8_t*>(v.data)[5], 35);
}

TEST(Gguf, UnsupportedGgmlTypeNamesTensorAndType) {
  GgufWriter w;
  std::vector<uint8_t> block(84, 0);
  w.add_tensor("blk.0.ffn_down_exps.weight", {256}, 10, block.data(), block.size());  // Q2_K
  std::string path = temp_dir() + "/q2k.gguf";
  w.write(path);
  GgufFile g = GgufFile::open(path);  // reading the layout works: the type's block size is known
  try {
    g.view(g.tensors()[0]);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("blk.0.ffn_down_exps.weight"), std::string::npos) << m;
    EXPECT_NE(m.find("Q2_K"), std::string::npos) << m;
  }
}

TEST(Gguf, SplitModel) {
  std::string dir = temp_dir();
  std::vector<float> x = {1, 2, 3, 4}, y = {5, 6};
  for (int k = 0; k < 2; ++k) {
    GgufWriter w;
    if (k == 0) w.set("general.architecture", GgufValue::string("qwen2"));
    w.set("split.no", GgufValue::of_int(GgufType::U16, k));
    w.set("split.count", GgufValue::of_int(GgufType::U16, 2));
    w.set("split.tensors.count", GgufValue::of_int(GgufType::I32, 2));
    if (k == 0) w.add_tensor("x", {4}, 0, x.data(), 16);
    if (k == 1) w.add_tensor("y", {2}, 0, y.data(), 8);
    w.write(dir + "/m-0000" + std::to_string(k + 1) + "-of-00002.gguf");
  }
  GgufFile g = GgufFile::open(dir + "/m-00002-of-00002.gguf");  // any part opens all
  EXPECT_EQ(g.n_parts(), 2u);
  EXPECT_EQ(g.architecture(), "qwen2");
  ASSERT_NE(g.find_tensor("y"), nullptr);
  EXPECT_EQ(g.view(*g.find_tensor("y")).f32()[1], 6.0f);
  EXPECT_EQ(g.view(*g.find_tensor("x")).f32()[3], 4.0f);
  EXPECT_THROW(GgufFile::open(dir + "/m-00001-of-00003.gguf"), Error);  // parts 2, 3 of 3 missing
  fs::copy_file(dir + "/m-00001-of-00002.gguf", dir + "/single.gguf", fs::copy_options::overwrite_existing);
  EXPECT_THROW(GgufFile::open(dir + "/single.gguf"), Error);  // says it is a part, name does not
}

// llama.cpp-written files: known metadata, tensor shapes and types, and data agreeing with the safetensors model.
TEST(Gguf, GoldenFilesFromLlamaCpp) {
  struct Case {
    const char* model;
    const char* arch;
    size_t n_tensors_f32;
  };
  for (Case c : {Case{"v3_tiny", "deepseek2", 70}, Case{"llama3_tiny", "llama", 31}, Case{"qwen2_tiny", "qwen2", 39},
                 Case{"qwen3_tiny", "qwen3", 36}, Case{"qwen3moe_tiny", "qwen3moe", 39}}) {
    std::string dir = kData + "/golden-gguf/" + c.model;
    for (auto& e : fs::directory_iterator(dir)) {
      if (e.path().extension() != ".gguf") continue;
      SCOPED_TRACE(e.path().string());
      GgufFile g = GgufFile::open(e.path().string());
      EXPECT_EQ(g.version(), 3u);
      EXPECT_EQ(g.architecture(), c.arch);
      std::string a = c.arch;
      EXPECT_EQ(g.get_int(a + ".embedding_length"), 64);
      EXPECT_EQ(g.get_int(a + ".attention.head_count"), 4);
      EXPECT_EQ(g.get_array("tokenizer.ggml.tokens", GgufType::STRING).strings.size(), 512u);
      EXPECT_EQ(g.get_array("tokenizer.ggml.tokens", GgufType::STRING).strings[7], "<t7>");
      const GgufTensor* emb = g.find_tensor("token_embd.weight");
      ASSERT_NE(emb, nullptr);
      EXPECT_EQ(g.view(*emb).shape, (std::vector<int64_t>{512, 64}));
      bool q8 = e.path().string().find("q8_0") != std::string::npos;
      EXPECT_EQ(g.view(*emb).dtype, q8 ? DType::Q8_0 : DType::F32);
      bool kvb = e.path().string().find("kvb") != std::string::npos;
      if (!q8) {
        EXPECT_EQ(g.tensors().size(), c.n_tensors_f32 - (kvb ? 4 : 0));
      }
      for (auto& t : g.tensors()) EXPECT_NO_THROW(g.view(t)) << t.name();
      if (q8) continue;
      // F32 data equals the safetensors model's (llama.cpp keeps embeddings and norms unpermuted).
      WeightStore st = WeightStore::open_safetensors(kData + "/golden/" + c.model + "/hf_f32");
      for (auto [gname, hname] : {std::pair{"token_embd.weight", "model.embed_tokens.weight"},
                                  std::pair{"blk.1.attn_norm.weight", "model.layers.1.input_layernorm.weight"},
                                  std::pair{"output_norm.weight", "model.norm.weight"}}) {
        TensorView gv = g.view(*g.find_tensor(gname));
        const TensorView& hv = st.find(hname)->view;
        ASSERT_EQ(gv.shape, hv.shape) << gname;
        EXPECT_EQ(0, std::memcmp(gv.data, hv.data, hv.nbytes)) << gname;
      }
    }
  }
  GgufFile v3 = GgufFile::open(kData + "/golden-gguf/v3_tiny/model-f32.gguf");
  EXPECT_EQ(v3.find_tensor("blk.1.ffn_gate_exps.weight")->info->ne, (std::vector<int64_t>{64, 32, 8}));
  EXPECT_EQ(v3.find_tensor("blk.0.attn_k_b.weight")->info->ne, (std::vector<int64_t>{16, 32, 4}));
  EXPECT_EQ(v3.get_int("deepseek2.attention.key_length_mla"), 24);
  EXPECT_EQ(v3.opt_bool("deepseek2.expert_weights_norm"), true);
  EXPECT_NEAR(v3.get_float("deepseek2.rope.scaling.yarn_log_multiplier"), 0.1, 1e-7);
  GgufFile q8 = GgufFile::open(kData + "/golden-gguf/v3_tiny/model-kvb-q8_0.gguf");
  EXPECT_EQ(q8.find_tensor("blk.0.attn_kv_b.weight")->info->ne, (std::vector<int64_t>{32, 128}));
  EXPECT_EQ(q8.get_int("general.file_type"), 7);
}

TEST(Gguf, VocabOnlyFilesFromLlamaCpp) {
  struct Case {
    std::string path, pre;
    size_t n_tokens, n_merges;
    int64_t bos;
  };
  for (const Case& c : {Case{kData + "/fixtures/vocab-tests/ggml-vocab-deepseek-coder.gguf", "deepseek-coder", 32256,
                             31757, 32013},
                        Case{kData + "/fixtures/tokenizers/deepseek-llm-v2/ggml-vocab-deepseek-llm.gguf",
                             "deepseek-llm", 102400, 99757, 100000}}) {
    GgufFile g = GgufFile::open(c.path);
    EXPECT_TRUE(g.tensors().empty());
    EXPECT_EQ(g.get_string("tokenizer.ggml.model"), "gpt2");
    EXPECT_EQ(g.get_string("tokenizer.ggml.pre"), c.pre);
    EXPECT_EQ(g.get_array("tokenizer.ggml.tokens", GgufType::STRING).strings.size(), c.n_tokens);
    EXPECT_EQ(g.get_array("tokenizer.ggml.token_type", GgufType::I32).ints.size(), c.n_tokens);
    const auto& merges = g.get_array("tokenizer.ggml.merges", GgufType::STRING).strings;
    ASSERT_EQ(merges.size(), c.n_merges);
    EXPECT_EQ(merges[0], "Ġ Ġ");
    EXPECT_EQ(g.get_int("tokenizer.ggml.bos_token_id"), c.bos);
    EXPECT_EQ(g.opt_bool("tokenizer.ggml.add_bos_token"), true);
  }
}

// Every prefix of a valid file: an error for each one that cuts into the header or the tensor data.
TEST(Gguf, EveryTruncationIsAnError) {
  std::vector<uint8_t> b = sample_writer().to_bytes();
  // The last tensor's padding is not data: cutting only padding still parses.
  GgufHeader full = parse_gguf(b.data(), b.size(), "x");
  uint64_t need = full.data_start + full.tensors.back().offset + full.tensors.back().nbytes;
  for (size_t n = 0; n < b.size(); ++n) {
    std::vector<uint8_t> cut(b.begin(), b.begin() + long(n));
    std::string err = parse_error(cut);
    if (n < need) {
      EXPECT_NE(err, "") << "prefix of " << n << " bytes parsed";
      EXPECT_NE(err.find("bad.gguf"), std::string::npos) << err;
    }
  }
  // A large real header too, at many lengths.
  MappedFile f(kData + "/golden-gguf/qwen3moe_tiny/model-q8_0.gguf");
  uint64_t header_end = parse_gguf(f.data(), f.size(), f.path()).data_start;
  for (size_t n = 0; n < header_end; n += 13) {  // copies, so that the sanitizer sees reads past the cut
    std::vector<uint8_t> cut(f.data(), f.data() + n);
    EXPECT_NE(parse_error(cut), "") << n;
  }
  for (size_t n = header_end; n < f.size(); n += 4099)
    EXPECT_THROW(parse_gguf(f.data(), n, f.path()), Error) << n;
}

// Byte flips anywhere in the header: never a crash, and what parses keeps every tensor inside the image.
TEST(Gguf, ByteFlipsNeverCrash) {
  std::vector<uint8_t> b = sample_writer().to_bytes();
  GgufHeader h = parse_gguf(b.data(), b.size(), "x");
  size_t n_errors = 0;
  for (size_t pos = 0; pos < h.data_start; ++pos) {
    for (uint8_t v : {uint8_t(0x00), uint8_t(0xff), uint8_t(b[pos] ^ 0x01), uint8_t(b[pos] ^ 0x80)}) {
      std::vector<uint8_t> c = b;
      c[pos] = v;
      try {
        GgufHeader p = parse_gguf(c.data(), c.size(), "bad.gguf");
        for (auto& t : p.tensors) EXPECT_LE(p.data_start + t.offset + t.nbytes, c.size());
      } catch (const Error&) {
        ++n_errors;
      }
    }
  }
  EXPECT_GT(n_errors, h.data_start);  // most flips in counts, types and lengths are caught
}

// Crafted corruptions, each with the error it must give.
TEST(Gguf, CraftedCorruptions) {
  std::vector<uint8_t> good = sample_writer().to_bytes();
  auto put64 = [](std::vector<uint8_t>& b, size_t at, uint64_t v) { std::memcpy(b.data() + at, &v, 8); };
  auto put32 = [](std::vector<uint8_t>& b, size_t at, uint32_t v) { std::memcpy(b.data() + at, &v, 4); };
  auto expect = [](const std::vector<uint8_t>& b, const std::string& want) {
    std::string err = parse_error(b);
    EXPECT_NE(err.find(want), std::string::npos) << "got: '" << err << "', want: " << want;
  };
  std::vector<uint8_t> b = good;
  b[0] = 'X';
  expect(b, "bad magic");
  b = good, put32(b, 4, 1), expect(b, "version 1 is not supported");
  b = good, put32(b, 4, 0x03000000), expect(b, "big-endian");
  b = good, put32(b, 4, 7), expect(b, "unsupported GGUF version 7");
  b = good, put64(b, 8, uint64_t(1) << 60), expect(b, "tensor count");
  b = good, put64(b, 16, ~uint64_t(0)), expect(b, "metadata count");
  b = good, put64(b, 24, uint64_t(1) << 62), expect(b, "has length");  // first key length
  // First key is general.architecture (20 chars): its type follows at 24 + 8 + 20.
  b = good, put32(b, 52, 13), expect(b, "unknown value type 13");
  // Its string value length at 56.
  b = good, put64(b, 56, uint64_t(1) << 50), expect(b, "has length");

  // Arrays with huge counts, unknown element types, deep nesting; bad alignment; bad tensors.
  auto one_key = [](const std::string& key, GgufValue v) {
    GgufWriter w;
    w.set(key, std::move(v));
    return w.to_bytes();
  };
  std::vector<uint8_t> arr = one_key("a", GgufValue::int_array(GgufType::I32, {1, 2}));
  // key "a": length 8 + 1 byte, type 4 -> array header at 24 + 13 = 37: elem type (4), count (8).
  b = arr, put64(b, 41, uint64_t(1) << 61), expect(b, "cannot fit");
  b = arr, put32(b, 37, 99), expect(b, "unknown array element type 99");
  GgufValue deep = GgufValue::int_array(GgufType::U8, {1});
  for (int k = 0; k < 10; ++k) deep = GgufValue::array_array({deep});
  expect(one_key("deep", deep), "nested deeper");
  expect(one_key("b", GgufValue::of_int(GgufType::BOOL, 2)), "bool value 2");
  expect(one_key("general.alignment", GgufValue::u32(48)), "not a power of two");
  expect(one_key("general.alignment", GgufValue::i32(32)), "must be u32");

  auto one_tensor = [](std::vector<int64_t> ne, uint32_t type) {
    GgufWriter w;
    w.add_tensor("t", std::move(ne), type, [](uint8_t*) {});
    return w.to_bytes();
  };
  std::vector<uint8_t> t = one_tensor({32, 2}, 8);
  // Tensor info at 24: name (8 + 1), n_dims at 33, ne at 37 and 45, type at 53, offset at 57.
  b = t, put32(b, 53, 200), expect(b, "unknown ggml type 200");
  b = t, put32(b, 33, 5), expect(b, "5 dimensions");
  b = t, put64(b, 37, 33), expect(b, "not a multiple of the Q8_0 block size 32");
  b = t, put64(b, 45, uint64_t(1) << 47), expect(b, "outside the data section");
  b = t, put64(b, 45, uint64_t(1) << 49), expect(b, "dimension 1 is");
  b = t, put64(b, 57, 16), expect(b, "not a multiple of the alignment");
  b = t, put64(b, 57, 1 << 20), expect(b, "outside the data section");
  b = t, put64(b, 57, ~uint64_t(0) & ~uint64_t(31)), expect(b, "outside the data section");

  GgufWriter dup;
  dup.add_tensor("t", {1}, 0, [](uint8_t*) {});
  dup.add_tensor("u", {1}, 0, [](uint8_t*) {});
  b = dup.to_bytes();
  b[24 + 8 + 1 + 4 + 8 + 4 + 8 + 8] = 't';  // second tensor's name "u" -> "t"
  expect(b, "duplicate tensor name");
  GgufWriter dupk;
  dupk.set("k", GgufValue::u32(1));
  dupk.set("j", GgufValue::u32(2));
  b = dupk.to_bytes();
  b[24 + 8 + 1 + 4 + 4 + 8] = 'k';
  expect(b, "duplicate metadata key 'k'");
}

TEST(Gguf, WriterRejectsBadTensors) {
  GgufWriter w;
  std::vector<uint8_t> d(64);
  EXPECT_THROW(w.add_tensor("x", {33}, 8, d.data(), 34), Error);  // not a block multiple
  EXPECT_THROW(w.add_tensor("x", {4}, 0, d.data(), 15), Error);   // wrong byte count
  EXPECT_THROW(w.add_tensor("x", {4}, 77, d.data(), 16), Error);  // unknown type
  w.add_tensor("x", {4}, 0, d.data(), 16);
  EXPECT_THROW(w.add_tensor("x", {4}, 0, d.data(), 16), Error);  // duplicate
  EXPECT_THROW(GgufWriter(24), Error);
}

}  // namespace
}  // namespace dm
