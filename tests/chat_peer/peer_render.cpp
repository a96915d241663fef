// Batch renderer for the chat-template peer test: reads [{"model_dir", "request"}, ...] (JSON file argv[1]),
// renders each through dm::chat::ChatTemplate::from_model_dir, and writes [{"ok", "output" | "error"}, ...] to
// argv[2]. One process for all cases keeps the test fast, also under the sanitizers.
#include <fstream>
#include <iostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "chat/chat_template.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: dm_chat_peer_render CASES.json OUT.json\n";
    return 2;
  }
  std::ifstream in(argv[1], std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  auto cases = nlohmann::ordered_json::parse(ss.str());
  nlohmann::ordered_json results = nlohmann::ordered_json::array();
  for (auto& c : cases) {
    nlohmann::ordered_json r;
    try {
      auto tmpl = dm::chat::ChatTemplate::from_model_dir(c["model_dir"].get<std::string>());
      auto req = dm::chat::ChatRequest::from_json(c["request"]);
      r["ok"] = true;
      r["output"] = tmpl.render(req);
    } catch (const dm::Error& e) {
      r["ok"] = false;
      r["error"] = e.what();
    }
    results.push_back(r);
  }
  std::ofstream out(argv[2], std::ios::binary);
  out << results.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return 0;
}
