// Counting the JSON-RPC errors in backend answers to POSTs (see
// mcp_session/answer_watch.hpp): a header and a body filter of their own
// that only look, never change what the client receives.
#pragma once

#include "ngx_mcp_session_request.hpp"

namespace mcp_session {
class answer_watch;
}

namespace mcp_ngx {

void install_answer_watch() noexcept;

// For the POST-stream relay, which parses the backend's SSE anyway and
// hands each event's data to the watch itself: the request's answer watch
// (null if it has none), no longer fed by the watch's own body filter
// until hand_back_answer_watch (the relay stops relaying).
mcp_session::answer_watch* take_over_answer_watch(request_state* state);
void hand_back_answer_watch(request_state* state);
// Adds to the zone's counts what the watch found since the last call.
void record_answer_counts(request_state* state);

}  // namespace mcp_ngx
