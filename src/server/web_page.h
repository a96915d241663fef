// The chat page served at `/`: one self-contained HTML file that talks to /v1/chat/completions with streaming.
#pragma once

namespace dm {

extern const char* const kWebPage;

}  // namespace dm
