// Counting the JSON-RPC errors in backend answers to POSTs (see
// mcp_session/answer_watch.hpp): a header and a body filter of their own
// that only look, never change what the client receives.
#pragma once

namespace mcp_ngx {

void install_answer_watch() noexcept;

}  // namespace mcp_ngx
