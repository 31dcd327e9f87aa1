// What the module knows about one request, kept in its module context.
#pragma once

#include "ngx_mcp_session_conf.hpp"

#include "mcp_session/event.hpp"
#include "mcp_session/session_key.hpp"

#include <string_view>

namespace mcp_ngx {

// The values of $mcp_session_status, in this order.
enum class session_status : std::uint8_t { none, created, valid, unknown, expired };

std::string_view status_name(session_status status);

struct stream_ctx;
struct answer_watch_ctx;

// What Redis said about a session this node did not hold (redis=).
enum class shared_lookup : std::uint8_t { none, pending, adopted, absent, unavailable };

struct request_state {
    zone_conf* zone;
    session_status status;
    bool answered_here;  // nginx wrote the response itself; filters keep out
    ngx_str_t id;        // presented (trimmed) or learned: $mcp_session_id
    mcp_session::session_key key;  // meaningful while status is valid
    std::uint64_t last_event_id;   // a stream's starting cursor (a POST stream's: its k)
    std::uint64_t resumed_post_stream;  // Last-Event-ID named POST stream P (0: the standalone stream)
    struct post_recorder* recorder;     // the backend's SSE answer to this POST is being recorded
    mcp_session::event_kind publish_kind;
    stream_ctx* stream;
    ngx_int_t access_result;       // what the access handler answers when re-entered
    bool passthrough;              // modern sessionless traffic: never our 400 or 404
    bool issued;                   // nginx made this session for this request
    bool modern;                   // MCP-Protocol-Version names a sessionless revision
    bool issue_mode;               // the location that made this state issues ids
    bool streamed;                 // the session's GET is nginx's to serve
    struct lost_answer_ctx* lost_answer;  // a 400/404 held or replaced (ngx_mcp_session_lost_answer.cpp)
    ngx_str_t protocol_version;    // $mcp_protocol_version
    ngx_str_t request_id;          // JSON text of the body's id, for our errors ("null"): $mcp_rpc_id
    ngx_str_t method;              // $mcp_method, where the body was read
    ngx_str_t target;              // $mcp_tool: the tool, prompt or resource it names
    bool deciding;                 // the body decides the session (issue mode, sessionless)
    answer_watch_ctx* answer_watch;  // reading a backend answer for JSON-RPC errors (ngx_mcp_session_answer_watch.cpp)
    ngx_str_t pinned_server;       // the upstream server the session is pinned to: $mcp_session_upstream
    bool pinned_server_gone;       // mcp_session_sticky found it down, or connecting to it failed
    ngx_str_t sent_backend_id;     // issue mode: the backend id this request carries to the backend
    ngx_str_t initialize_body;     // an issued session's initialize, kept for mcp_session_heal
    struct heal_ctx* heal;         // the session is being healed (ngx_mcp_session_heal.cpp)
    struct backend_stream* backend_stream;  // nginx's own GET holding the backend's stream (ngx_mcp_session_backend_stream.cpp)
    shared_lookup shared;          // the session was looked up in Redis
    bool resume_gate;              // the lookup answered: the gate judges the request again
    mcp_session::unix_ms created_ms;          // $mcp_session_age
    mcp_session::unix_ms previous_access_ms;  // $mcp_session_idle: before this request
};

// Lives in the request pool, which frees memory without destructors.
static_assert(std::is_trivially_destructible_v<request_state>);

// The request's state. An internal redirect (error_page, try_files, a
// named location) clears module contexts, so the state is found again
// through its pool cleanup entry: the session was decided once, and the
// backend id the request now carries must not be judged as a client's.
request_state* state_of(ngx_http_request_t* r);

request_state* create_state(ngx_http_request_t* r, zone_conf* zone);

class session_store;
struct presented_binding;

// Digests of this request's mcp_session_principal / mcp_session_tenant
// values (where the location configures them), keyed by the zone.
presented_binding presented_binding_of(ngx_http_request_t* r, session_store& store);

}  // namespace mcp_ngx
